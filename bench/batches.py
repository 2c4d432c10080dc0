"""Batch engine figures, each against a baseline measured in the same run (bench/README.md says more).

    python bench/batches.py [--docs 1500] [--big 100000]

  add-objects 10k / 100k  POST .../batches/{id}/objects (validated) vs the same ids in a sqlite3 executemany
  submit-to-start         submit answered -> tier 0 IN_PROGRESS vs one in-process GET /v1/tasks/{id}
  e2e docs/s              a MiniLM text batch through the whole engine vs the model's encode alone
  100k batch              docs/s vs the 10k batch; peak RSS of the server (this process: the app and its
                          scheduler) and of the worker processes vs their idle RSS just before submit;
                          growth per object vs the 10k batch's (near 0.1: memory does not grow with it)
Writes bench/results/batches.json (bench/figures.py shape).
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_figures, write_results
from rss import RssSampler, rss_mb, workers_mb
from text_extraction import paragraphs

from strataflow.app import create_app
from strataflow.config import Settings
from strataflow.extractors.text_models import embed_texts, load_text_model
from strataflow.ids import new_id
from strataflow.runtime import open_runtime
from strataflow.store.tables import Bucket, BucketObject, StatusEvent

KEY = "sk_bench_admin_key_0123456789abcdef"


def _client(data_dir: Path, **overrides: Any) -> tuple[TestClient, Any]:
    settings = Settings(data_dir=data_dir, api_key=KEY, task_poll_interval_s=0.05, **overrides)
    runtime = open_runtime(settings)
    client = TestClient(create_app(runtime=runtime))
    client.__enter__()
    client.headers.update({"Authorization": f"Bearer {KEY}"})
    client.post("/v1/namespaces", json={"namespace_name": "bench"})
    client.headers["X-Namespace"] = "bench"
    return client, runtime


def _bucket_and_collection(client: TestClient, model: str) -> str:
    schema = {"properties": {"content": {"type": "text"}}}
    bucket_id = client.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": schema}).json()["bucket_id"]
    response = client.post(
        "/v1/collections",
        json={
            "collection_name": "chunks",
            "source": {"type": "bucket", "bucket_ids": [bucket_id]},
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": "content"},
                "parameters": {"extractor_type": "text_extractor", "split_by": "none", "model": model},
            },
        },
    )
    assert response.status_code == 200, response.text
    return str(bucket_id)


def _bulk_objects(runtime: Any, bucket_id: str, texts: list[str]) -> list[str]:
    """Bench set-up only: rows straight into the table, text bytes through the blob store."""
    with runtime.db.transaction() as session:
        bucket = session.get(Bucket, bucket_id)
        namespace_id = bucket.namespace_id
    ids, rows = [], []
    # Set-up, not measured: 100,000 fsyncs take minutes on a disk shared with other users, and a
    # fixture's durability is worth nothing. The blob store itself is unchanged.
    with mock.patch("os.fsync"):
        for text in texts:
            object_id, blob_id = new_id("object"), new_id("blob")
            key = f"{namespace_id}/{bucket_id}/{object_id}/{blob_id}"
            written = runtime.blobs.put_bytes(key, text.encode())
            rows.append(
                {
                    "object_id": object_id,
                    "bucket_id": bucket_id,
                    "namespace_id": namespace_id,
                    "status": "DRAFT",
                    "metadata": {},
                    "source_details": [],
                    "size_bytes": written.size,
                    "blobs": [
                        {
                            "blob_id": blob_id,
                            "property": "content",
                            "type": "text",
                            "properties": {"url": runtime.blobs.uri(key), "key": key},
                            "details": {
                                "filename": "t.txt",
                                "size_bytes": written.size,
                                "mime_type": "text/plain",
                                "hash": written.sha256,
                            },
                        }
                    ],
                }
            )
            ids.append(object_id)
    with runtime.db.transaction() as session:
        for start in range(0, len(rows), 5000):
            session.execute(insert(BucketObject), rows[start : start + 5000])
    return ids


def _wait(client: TestClient, task_id: str, timeout: float = 3600, poll_s: float = 0.5) -> str:
    """Poll like a client would (the server shares these 2 cores with the worker: don't hammer it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/v1/tasks/{task_id}").json()["status"]
        if status in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"):
            return str(status)
        time.sleep(poll_s)
    raise TimeoutError(task_id)


def raw_insert_s(ids: list[str], work: Path) -> float:
    """The database work alone: the same ids into a batch_objects-shaped table, one executemany."""
    db = sqlite3.connect(work / f"raw-{len(ids)}.sqlite")
    db.execute("CREATE TABLE m (batch_id TEXT, object_id TEXT, position INTEGER, PRIMARY KEY (batch_id, object_id))")
    started = time.perf_counter()
    db.executemany("INSERT OR IGNORE INTO m VALUES ('b', ?, ?)", ((oid, i) for i, oid in enumerate(ids)))
    db.commit()
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def add_objects_latency(client: TestClient, ids: list[str], count: int) -> float:
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": ids[:1]}).json()
    started = time.perf_counter()
    response = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/objects", json={"object_ids": ids[:count]})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text[:300]
    return elapsed


def submit_to_start_ms(client: TestClient, runtime: Any, ids: list[str]) -> tuple[float, str]:
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": ids[:5]}).json()
    task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
    _wait(client, task["task_id"])
    with runtime.db.read_session() as session:
        events = session.execute(
            select(StatusEvent.entity_type, StatusEvent.to_status, StatusEvent.at).where(
                StatusEvent.entity_id.in_([batch["batch_id"], f"{batch['batch_id']}/tier_0"])
            )
        ).all()
    submitted = next(at for kind, status, at in events if kind == "batch" and status == "PENDING")
    started = next(at for kind, status, at in events if kind == "tier" and status == "IN_PROGRESS")
    return (started - submitted).total_seconds() * 1000, task["task_id"]


def read_round_trip_ms(client: TestClient, task_id: str) -> float:
    times = []
    for _ in range(20):
        started = time.perf_counter()
        client.get(f"/v1/tasks/{task_id}").raise_for_status()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _batch_seconds(runtime: Any, batch_id: str) -> float:
    """Submit to completion, from the recorded status events (no polling granularity)."""
    with runtime.db.read_session() as session:
        events = dict(
            session.execute(
                select(StatusEvent.to_status, StatusEvent.at).where(
                    StatusEvent.entity_type == "batch", StatusEvent.entity_id == batch_id
                )
            ).all()
        )
    return float((events["COMPLETED"] - events["PENDING"]).total_seconds())


def end_to_end(docs: int, work: Path) -> dict[str, float]:
    texts = paragraphs(docs)
    client, runtime = _client(work / "e2e")
    bucket_id = _bucket_and_collection(client, "minilm")
    ids = _bulk_objects(runtime, bucket_id, texts)
    warm = client.post("/v1/buckets/docs/batches", json={"object_ids": ids[:8]}).json()  # loads the model
    _wait(client, client.post(f"/v1/buckets/docs/batches/{warm['batch_id']}/submit", json={}).json()["task_id"])
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": ids}).json()
    task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
    assert _wait(client, task["task_id"]) == "COMPLETED"
    engine_rate = docs / _batch_seconds(runtime, batch["batch_id"])
    client.__exit__(None, None, None)
    runtime.close()
    load_text_model("minilm")
    embed_texts(texts[:64])
    started = time.perf_counter()
    embed_texts(texts, "minilm", batch_size=64)
    raw_rate = docs / (time.perf_counter() - started)
    return {
        "e2e_docs_per_s": round(engine_rate, 1),
        "raw_embed_per_s": round(raw_rate, 1),
        "e2e_over_raw": round(engine_rate / raw_rate, 3),
    }


def _run_sampled(client: TestClient, runtime: Any, ids: list[str]) -> dict[str, float]:
    batch = client.post("/v1/buckets/docs/batches?skip_validation=true", json={"object_ids": ids}).json()
    gc.collect()
    idle_self, idle_workers = rss_mb(os.getpid()), workers_mb()
    with RssSampler() as sampler:
        task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
        assert _wait(client, task["task_id"]) == "COMPLETED"
    return {
        "objects": len(ids),
        "seconds": _batch_seconds(runtime, batch["batch_id"]),
        "server_idle_mb": idle_self,
        "server_peak_mb": sampler.peak_self,
        "workers_idle_mb": idle_workers,
        "workers_peak_mb": sampler.peak_workers,
        "growth_kb_per_object": 1024 * (sampler.peak_self - idle_self + sampler.peak_workers - idle_workers) / len(ids),
    }


def big_batch(count: int, work: Path) -> dict[str, Any]:
    client, runtime = _client(work / "big", manifest_chunk_rows=2000, extract_batch_size=1000)
    bucket_id = _bucket_and_collection(client, "wordllama")
    ids = _bulk_objects(runtime, bucket_id, [f"Object number {i} says hello." for i in range(count)])
    small_n = min(10_000, count)
    submit_ms, task_id = submit_to_start_ms(client, runtime, ids)
    figures = {
        "add_objects_small_s": add_objects_latency(client, ids, small_n),
        "add_objects_small_raw_s": raw_insert_s(ids[:small_n], work),
        "add_objects_big_s": add_objects_latency(client, ids, count),
        "add_objects_big_raw_s": raw_insert_s(ids, work),
        "submit_to_start_ms": submit_ms,
        "read_round_trip_ms": read_round_trip_ms(client, task_id),
        "small": _run_sampled(client, runtime, ids[: count // 10]),  # the same work at a tenth
        "big": _run_sampled(client, runtime, ids),
    }
    client.__exit__(None, None, None)
    runtime.close()
    return figures


def figures_of(big: dict[str, Any], e2e: dict[str, float]) -> list[Figure]:
    small, large = big["small"], big["big"]
    n, k = f"{large['objects']:,}", f"{small['objects']:,}"
    return [
        Figure(
            "add_objects_10k_s",
            f"add {min(10_000, large['objects']):,} objects to a batch (validated)",
            big["add_objects_small_s"],
            "s",
            "lower",
            big["add_objects_small_raw_s"],
            "same ids, sqlite3 executemany insert",
        ),
        Figure(
            "add_objects_100k_s",
            f"add {n} objects to a batch (validated)",
            big["add_objects_big_s"],
            "s",
            "lower",
            big["add_objects_big_raw_s"],
            "same ids, sqlite3 executemany insert",
        ),
        Figure(
            "submit_to_start_ms",
            "submit -> tier 0 IN_PROGRESS",
            big["submit_to_start_ms"],
            "ms",
            "lower",
            big["read_round_trip_ms"],
            "one GET /v1/tasks/{id}, in-process",
        ),
        Figure(
            "e2e_docs_per_s",
            "text batch through the engine (MiniLM)",
            e2e["e2e_docs_per_s"],
            "docs/s",
            "higher",
            e2e["raw_embed_per_s"],
            "MiniLM encode alone, same texts",
        ),
        Figure(
            "batch_100k_docs_per_s",
            f"{n}-object batch (WordLlama)",
            large["objects"] / large["seconds"],
            "docs/s",
            "higher",
            small["objects"] / small["seconds"],
            f"{k}-object batch, same run",
        ),
        Figure(
            "batch_100k_server_peak_mb",
            f"{n}-object batch: server peak RSS",
            large["server_peak_mb"],
            "MiB",
            "lower",
            large["server_idle_mb"],
            "server RSS just before submit",
        ),
        Figure(
            "batch_100k_workers_peak_mb",
            f"{n}-object batch: worker processes' peak RSS",
            large["workers_peak_mb"],
            "MiB",
            "lower",
            large["workers_idle_mb"],
            "workers' RSS before submit",
        ),
        Figure(
            "batch_100k_growth_kb_per_object",
            f"{n}-object batch: peak growth (server + workers) per object",
            large["growth_kb_per_object"],
            "KiB",
            "lower",
            small["growth_kb_per_object"],
            f"the same at {k} objects",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--big", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big, e2e = big_batch(args.big, Path(tmp)), end_to_end(args.docs, Path(tmp))
    figures = figures_of(big, e2e)
    print_figures(figures)
    print(f"wrote {write_results('batches', figures, {'big': big, 'e2e': e2e})}")


if __name__ == "__main__":
    main()
