"""Slow URLs never hold the database: while 32 fetches drip in (more than PostgreSQL's pool of
30 connections; SQLite has a single writer), another tenant creates an object and lists its
buckets, on both databases. Before the fix each slow create held a write transaction (SQLite:
BEGIN IMMEDIATE) or a pooled connection for the whole download."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from strataflow.config import Settings
from tests.conftest import ADMIN_KEY
from tests.security.outbound_servers import LoopbackServer, loopback_server

SLOW = 32
SCHEMA = {"properties": {"content": {"type": "text"}}}


@pytest.fixture
def dripping() -> Iterator[LoopbackServer]:
    with loopback_server() as live:
        live.behaviour.drip_until = threading.Event()
        yield live


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest, dripping: LoopbackServer) -> Settings:
    database_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        api_key=ADMIN_KEY,
        task_poll_interval_s=0.05,
        outbound_allow=f"127.0.0.1:{dripping.port}",
        outbound_max_concurrent=SLOW + 8,
        outbound_deadline_s=600,
    )


def _tenant(client: TestClient, name: str) -> dict[str, str]:
    assert client.post("/v1/namespaces", json={"namespace_name": name}).status_code == 200
    headers = {"X-Namespace": name}
    made = client.post("/v1/buckets", json={"bucket_name": "notes", "bucket_schema": SCHEMA}, headers=headers)
    assert made.status_code == 200, made.text
    return headers


def test_slow_fetches_hold_no_database(client: TestClient, dripping: LoopbackServer) -> None:
    slow_tenant, other_tenant = _tenant(client, "slow"), _tenant(client, "other")
    answers: list[httpx.Response] = []

    def slow_create(i: int) -> None:
        blob = {"property": "content", "type": "text", "data": f"{dripping.url}/drip/{i}.txt"}
        answers.append(client.post("/v1/buckets/notes/objects", json={"blobs": [blob]}, headers=slow_tenant))

    threads = [threading.Thread(target=slow_create, args=(i,)) for i in range(SLOW)]
    for thread in threads:
        thread.start()
    try:
        dripping.wait_for(lambda s: s.active == SLOW)  # every slow create is mid-download now

        plain = client.post(
            "/v1/buckets/notes/objects",
            headers=other_tenant,
            json={"blobs": [{"property": "content", "type": "text", "data": "plain text"}]},
        )
        assert plain.status_code == 200, plain.text
        listed = client.get("/v1/buckets", headers=other_tenant)
        assert listed.status_code == 200, listed.text
        assert [b["bucket_name"] for b in listed.json()["results"]] == ["notes"]
        patched = client.patch(
            f"/v1/buckets/notes/objects/{plain.json()['object_id']}",
            headers=other_tenant,
            json={"metadata": {"seen": "yes"}},
        )
        assert patched.status_code == 200, patched.text

        # ...and all of that while the slow ones are still downloading.
        assert dripping.active == SLOW and answers == [] and all(t.is_alive() for t in threads)
    finally:
        assert dripping.behaviour.drip_until is not None
        dripping.behaviour.drip_until.set()
        for thread in threads:
            thread.join(120)
    assert sorted(a.status_code for a in answers) == [200] * SLOW, [a.text for a in answers if a.status_code != 200]
    counted: dict[str, Any] = client.get("/v1/buckets/notes", headers=slow_tenant).json()
    assert counted["object_count"] == SLOW
