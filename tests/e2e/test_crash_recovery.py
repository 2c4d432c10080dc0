"""SIGKILL the server in the middle of a tier: after a restart the batch finishes with exactly the right documents."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.live import API_KEY, child_pids, free_port, start_server, wait_gone

SENTENCES = 6
OBJECTS = 60


def _api(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {API_KEY}", "X-Namespace": "main"})


def _setup(api: httpx.Client) -> str:
    api.post("/v1/namespaces", json={"namespace_name": "main"}, headers={"X-Namespace": ""})
    schema = {"properties": {"content": {"type": "text"}}}
    bucket_id = api.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": schema}).json()["bucket_id"]
    collection = api.post(
        "/v1/collections",
        json={
            "collection_name": "sentences",
            "source": {"type": "bucket", "bucket_ids": [bucket_id]},
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": "content"},
                "parameters": {
                    "extractor_type": "text_extractor",
                    "split_by": "sentences",
                    "chunk_size": 1,
                    "model": "minilm",
                },
            },
        },
    )
    assert collection.status_code == 200, collection.text
    text = " ".join(f"Sentence number {n} of this object." for n in range(SENTENCES))
    items = [
        {"blobs": [{"property": "content", "type": "text", "data": f"{text} Unique tail {i}."}]} for i in range(OBJECTS)
    ]
    created = api.post("/v1/buckets/docs/objects/batch", json={"objects": items}).json()
    object_ids = [o["object_id"] for o in created["succeeded"]]
    batch = api.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()
    return str(batch["batch_id"]), collection.json()["collection_id"]  # type: ignore[return-value]


def _wait(api: httpx.Client, batch_id: str, until: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = api.get(f"/v1/buckets/docs/batches/{batch_id}").json()
        if until(batch):
            return dict(batch)
        time.sleep(0.05)
    raise AssertionError(f"batch never reached the expected state: {batch}")


def test_sigkill_mid_tier_then_restart(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    env = {
        "STRATAFLOW_TIER_LEASE_S": "3",
        "STRATAFLOW_MANIFEST_CHUNK_ROWS": "10",
        "STRATAFLOW_EXTRACT_BATCH_SIZE": "10",
    }
    server = start_server(data_dir, port, env)
    with _api(server.url) as api:
        batch_id, collection_id = _setup(api)
        api.post(f"/v1/buckets/docs/batches/{batch_id}/submit", json={})
        # Kill once some documents were written, before the tier is done.
        running = _wait(
            api,
            batch_id,
            lambda b: (
                b["tier_tasks"]
                and b["tier_tasks"][0]["status"] == "IN_PROGRESS"
                and (b["tier_tasks"][0]["performance"] or {}).get("rows_done", 0) >= 10
            ),
            120,
        )
        assert running["status"] == "IN_PROGRESS"
    workers = child_pids(server.process.pid)  # the pool's spawned processes, mid-extraction
    assert workers
    server.stop(signal.SIGKILL)
    # They must not outlive their server as orphans holding its models (a generous bound: they
    # notice within a second, but the machine may be busy).
    assert wait_gone(workers, 30) == set()

    server = start_server(data_dir, port, env)
    try:
        with _api(server.url) as api:
            done = _wait(api, batch_id, lambda b: b["status"] in ("COMPLETED", "FAILED", "COMPLETED_WITH_ERRORS"), 180)
            assert done["status"] == "COMPLETED", done
            tier = done["tier_tasks"][0]
            assert tier["performance"]["attempts"] == 2  # claimed, killed, resumed
            documents = api.post(f"/v1/collections/{collection_id}/documents/list?limit=1000", json={}).json()
            results = documents["results"]
            # Exactly a clean run's documents: every object's sentences once, nothing doubled or lost.
            assert len(results) == OBJECTS * (SENTENCES + 1)
            assert len({d["document_id"] for d in results}) == len(results)
            per_object = Counter(d["_internal"]["lineage"]["root_object_id"] for d in results)
            assert set(per_object.values()) == {SENTENCES + 1} and len(per_object) == OBJECTS
            chunks = {(d["_internal"]["lineage"]["root_object_id"], d["chunk_index"]) for d in results}
            assert len(chunks) == len(results)
    finally:
        server.stop()
