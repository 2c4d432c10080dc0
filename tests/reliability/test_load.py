"""Concurrent clients against one live server: no 5xx, no unexpected errors, no lost or doubled rows.

The load itself is bench/load.py (one implementation, two sizes); here it runs
small and briefly, then every row is counted against the 200s the clients got.
Latency and throughput are printed, never asserted: the machine is shared.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bench.load import KEY, LoadRecord, run_load, setup
from tests.live import start_server
from tests.reliability.crash_harness import TERMINAL, wait_terminal

CLIENTS, SECONDS = 32, 6.0  # more clients than pooled connections (15 on SQLite): see api/deps.py


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_concurrent_clients_lose_and_double_nothing(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    env = {"STRATAFLOW_API_KEY": KEY, "STRATAFLOW_ENGINE_THREADS": "1"}
    if database == "postgres":
        env["STRATAFLOW_DATABASE_URL"] = request.getfixturevalue("pg_url")
        _empty_schema(env["STRATAFLOW_DATABASE_URL"])
    server = start_server(tmp_path / "data", extra_env=env)
    try:
        setup(server.url)
        record = run_load(server.url, CLIENTS, SECONDS)
        print(f"\nload on {database}:", record.figures())
        assert not record.failures, record.failures[:10]
        assert len(record.confirmed) > CLIENTS and record.batches and record.confirm_tasks  # it did real work
        with httpx.Client(
            base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {KEY}", "X-Namespace": "main"}
        ) as client:
            _count_rows(client, record)
    finally:
        server.stop()


def _empty_schema(url: str) -> None:
    """The session's PostgreSQL schema may hold another test's rows: this server must start empty."""
    from sqlalchemy import create_engine, text

    from strataflow.store.tables import Base

    engine = create_engine(url)
    with engine.begin() as conn:
        tables = text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        existing = {r[0] for r in conn.execute(tables)}
        names = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name in existing)
        if names:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


def _count_rows(client: httpx.Client, record: LoadRecord) -> None:
    # Clients stopped; confirm tasks and batches finish in the background (bounds: did-not-hang).
    expected = set(record.confirmed)
    assert len(expected) == len(record.confirmed), "one object id returned by two confirms"
    for task_id in record.confirm_tasks:
        task = wait_terminal(client, f"/v1/tasks/{task_id}", 120)
        assert task["status"] == "COMPLETED", task
        ids = [item["object_id"] for item in task["outputs"]]
        assert len(ids) == 5 and not expected & set(ids)
        expected |= set(ids)
    objects = client.post("/v1/buckets/docs/objects/list?limit=1000&include_total=true", json={}).json()
    assert objects["pagination"]["total"] == len(expected) == len(objects["results"])
    assert {o["object_id"] for o in objects["results"]} == expected

    batches = client.post("/v1/buckets/docs/batches/list", json={"limit": 1000}).json()["results"]
    assert sorted(b["batch_id"] for b in batches) == sorted(b for b, _, _ in record.batches)
    processed: list[str] = []
    for batch_id, task_id, object_ids in record.batches:
        assert wait_terminal(client, f"/v1/tasks/{task_id}", 120)["status"] == "COMPLETED"
        assert client.get(f"/v1/buckets/docs/batches/{batch_id}").json()["status"] in TERMINAL
        processed += object_ids
    collection_id = client.post("/v1/collections/list", json={}).json()["results"][0]["collection_id"]
    docs = client.post(f"/v1/collections/{collection_id}/documents/list?limit=1000", json={}).json()["results"]
    # Each uploaded text is one sentence, so one document per processed object, none twice.
    assert sorted(d["_internal"]["lineage"]["root_object_id"] for d in docs) == sorted(processed)
