"""URL blobs through the API: internal addresses get one 400 that never tells a closed port from
an open one, the allow list lets named sources through, and text that merely holds a URL is text."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.config import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import assert_error
from tests.security.outbound_servers import BODY, LoopbackServer, loopback_server
from tests.security.test_outbound_guard import SPELLINGS

OBJECTS = "/v1/buckets/files/objects"
SCHEMA = {"properties": {"picture": {"type": "image"}, "content": {"type": "text"}}}


@pytest.fixture
def backend() -> str:
    return "sqlite"  # what is checked here is the guard, not the database


@pytest.fixture
def allowed() -> Iterator[LoopbackServer]:
    with loopback_server() as live:
        yield live


@pytest.fixture
def internal() -> Iterator[LoopbackServer]:
    with loopback_server() as live:
        yield live


@pytest.fixture
def settings(backend: str, tmp_path: Path, allowed: LoopbackServer) -> Settings:
    """Only the `allowed` server may be reached; the `internal` one stands for the host's other services."""
    return Settings(
        data_dir=tmp_path / "data",
        api_key=ADMIN_KEY,
        task_poll_interval_s=0.05,
        outbound_allow=f"127.0.0.1:{allowed.port}",
        outbound_deadline_s=1.0,
        outbound_max_bytes=4096,
    )


@pytest.fixture
def files(client: TestClient, namespace: dict[str, Any]) -> None:
    assert client.post("/v1/buckets", json={"bucket_name": "files", "bucket_schema": SCHEMA}).status_code == 200


def _refusal(client: TestClient, url: str, prop: str = "picture", kind: str = "image") -> str:
    body = assert_error(
        client.post(OBJECTS, json={"blobs": [{"property": prop, "type": kind, "data": url}]}), 400, "BadRequestError"
    )
    assert body["error"]["details"] == {"field": f"blobs.{prop}.data", "url": url}
    message: str = body["error"]["message"]
    return message.replace(url, "<url>")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the probe is closed


@pytest.mark.parametrize("spelling", [s for s in SPELLINGS if s.startswith("http") and "///" not in s])
def test_every_spelling_gets_the_same_400_and_reaches_nothing(
    client: TestClient, files: None, internal: LoopbackServer, spelling: str
) -> None:
    message = _refusal(client, spelling.format(port=internal.port))
    assert message == (
        "Blob 'picture': could not fetch <url>: the address is not allowed, or it did not "
        "answer with a file within 1 s and 4096 bytes"
    )
    assert internal.requests == []
    assert client.get("/v1/buckets/files").json()["object_count"] == 0


def test_refused_closed_open_and_slow_read_the_same(
    client: TestClient, files: None, allowed: LoopbackServer, internal: LoopbackServer
) -> None:
    """Whatever happened (refused address, closed port, open port answering 404, a silent server,
    a body too big, a redirect to a refused address), the caller reads one and the same message."""
    allowed.behaviour.redirects = {"/bounce": f"{internal.url}/x"}
    allowed.behaviour.sizes = {"/huge": 10_000}
    messages = {
        "open but not allowed": _refusal(client, f"{internal.url}/x"),
        "closed and not allowed": _refusal(client, f"http://127.0.0.1:{_closed_port()}/x"),
        "allowed, answers 404": _refusal(client, f"{allowed.url}/missing"),
        "allowed, too big": _refusal(client, f"{allowed.url}/huge"),
        "allowed, redirects inside": _refusal(client, f"{allowed.url}/bounce"),
    }
    allowed.behaviour.drip_bytes = 300
    messages["allowed, drips past the deadline"] = _refusal(client, f"{allowed.url}/drip")
    assert len(set(messages.values())) == 1, messages
    assert internal.requests == []


def test_allowed_source_is_fetched(client: TestClient, files: None, allowed: LoopbackServer) -> None:
    made = client.post(
        OBJECTS, json={"blobs": [{"property": "picture", "type": "image", "data": f"{allowed.url}/photo.png"}]}
    )
    assert made.status_code == 200, made.text
    blob = made.json()["blobs"][0]
    assert blob["details"]["size_bytes"] == len(BODY) and blob["properties"]["source_url"].endswith("/photo.png")


def test_text_is_fetched_only_when_the_whole_value_is_a_url(
    client: TestClient, files: None, runtime: Any, allowed: LoopbackServer
) -> None:
    literal = [
        f"{allowed.url}/page is where my homepage used to live",
        f"{allowed.url}/page\n",
        f" {allowed.url}/page",
        f"{allowed.url}/a\tb",
        "http://169.254.169.254/ is the metadata service",
        "https:// nothing",
        "http://",
    ]
    for text in literal:
        made = client.post(OBJECTS, json={"blobs": [{"property": "content", "type": "text", "data": text}]})
        assert made.status_code == 200, (text, made.text)
        key = made.json()["blobs"][0]["properties"]["key"]
        assert runtime.blobs.path(key).read_bytes() == text.encode(), text
        assert "source_url" not in made.json()["blobs"][0]["properties"]
    assert allowed.requests == []
    whole = client.post(
        OBJECTS, json={"blobs": [{"property": "content", "type": "text", "data": f"{allowed.url}/page.txt"}]}
    )
    assert whole.status_code == 200, whole.text
    assert runtime.blobs.path(whole.json()["blobs"][0]["properties"]["key"]).read_bytes() == BODY
    assert allowed.requests == ["/page.txt"]
