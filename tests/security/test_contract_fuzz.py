"""Contract fuzzing: schemathesis drives a live server from its own OpenAPI document.

Every operation, with a valid key and namespace, positive and negative inputs.
For each response: no 5xx, the status code and Content-Type are documented, the
body matches the schema, and every error is the ErrorResponse envelope.

A real `strataflow serve` process on loopback (not the ASGI app in-process): the
bytes go through uvicorn, the middleware and the serializer as in production.
Deterministic (hypothesis derandomized: same cases every run) and bounded
(a fixed number of examples per operation).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from strataflow.app import create_app
from strataflow.config import Settings
from tests.live import API_KEY, LiveServer, start_server

HEADERS = {"Authorization": f"Bearer {API_KEY}", "X-Namespace": "fuzz"}
EXAMPLES = 8  # per operation, positive and negative mixed: ~85 operations, ~700 requests


def _seed(url: str) -> None:
    """A namespace with a bucket, an object and a collection, so some generated names hit real rows."""
    with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as http:
        assert http.post("/v1/namespaces", json={"namespace_name": "fuzz"}).status_code == 200
        schema = {"properties": {"content": {"type": "text"}, "title": {"type": "string"}}}
        assert http.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": schema}).status_code == 200
        created = http.post(
            "/v1/buckets/docs/objects",
            json={"metadata": {"title": "seed"}, "blobs": [{"property": "content", "type": "text", "data": "hello"}]},
        )
        assert created.status_code == 200, created.text


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    server = start_server(data_dir)
    try:
        _seed(server.url)
        yield server
    finally:
        server.stop()


# The document the app builds for itself, loaded at collection time so that each operation is
# its own test item. (schemathesis' lazy `from_fixture` fails under pytest 9: no `_nodeid`.)
# create_app touches nothing on disk until its lifespan starts.
DOCUMENT = create_app(Settings(api_key=API_KEY)).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_server_publishes_the_document_we_fuzz(live: LiveServer) -> None:
    assert httpx.get(f"{live.url}/openapi.json", timeout=60).json() == DOCUMENT


SEEN: Counter[int] = Counter()  # status codes answered, for the sanity check at the end


def _assert_envelope(response: Any) -> None:
    if response.status_code < 400:
        return
    body = response.json()
    assert body["success"] is False and body["status"] == response.status_code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    assert isinstance(body["error"]["type"], str) and body["error"]["type"], body


# One pytest item per operation, named "METHOD /path". (schemathesis' own `parametrize` gives
# every item the same node id, which pytest-xdist cannot distribute: it ran just one.)
OPERATIONS = [f"{method.upper()} {path}" for path, ops in DOCUMENT["paths"].items() for method in ops]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_operation_keeps_the_contract(operation: str, live: LiveServer) -> None:
    method, path = operation.split(" ", 1)
    api_operation = schema[path][method]
    cases = st.one_of(
        api_operation.as_strategy(GenerationMode.POSITIVE), api_operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        # The key and namespace are ours, whatever was generated for those headers: the fuzz is
        # aimed at the operation, not at auth (test_tenant_isolation.py covers that).
        case.headers = {**(case.headers or {}), **HEADERS}
        response = case.call_and_validate(
            base_url=live.url,
            timeout=30,
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        )
        SEEN[response.status_code] += 1
        _assert_envelope(response)

    call()


def test_the_fuzz_really_ran() -> None:
    # Runs after the fuzz (same module, file order): guards against a generator that silently
    # produces nothing, or a setup that answers every request with the same error.
    assert sum(SEEN.values()) >= len(OPERATIONS) * EXAMPLES // 2, SEEN  # hypothesis may stop early
    assert sum(n for code, n in SEEN.items() if code < 300) >= 50, SEEN
    assert {400, 404, 422} <= set(SEEN), SEEN
