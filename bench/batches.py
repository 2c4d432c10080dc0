"""Batch engine figures, each against a baseline measured in the same run.

    python bench/batches.py [--docs 1500] [--big 100000]

  add_objects_10k / _100k   POST .../batches/{id}/objects with validation (one set query), seconds
  submit_to_start_ms        submit answered -> tier 0 IN_PROGRESS, on an idle server (status events)
  e2e_docs_per_s            a text batch (MiniLM) through the whole engine: manifest, process-pool
                            worker, documents with lineage written to LanceDB
  raw_embed_per_s           the same model's encode over the same texts, in this process (baseline)
  batch_N_*                 seconds and peak memory (server process, worker processes) of a
                            10,000- and a 100,000-object batch (WordLlama, one chunk per object);
                            memory should not grow with the batch: the manifest streams in chunks
Writes bench/results/batches.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import threading
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).parent))
from text_extraction import paragraphs  # noqa: E402  (the same deterministic texts)

from strataflow.app import create_app  # noqa: E402
from strataflow.config import Settings  # noqa: E402
from strataflow.extractors.text_models import embed_texts, load_text_model  # noqa: E402
from strataflow.ids import new_id  # noqa: E402
from strataflow.runtime import open_runtime  # noqa: E402
from strataflow.store.tables import Bucket, BucketObject, StatusEvent  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "batches.json"
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
    response = client.post("/v1/collections", json={
        "collection_name": "chunks", "source": {"type": "bucket", "bucket_ids": [bucket_id]},
        "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1",
                              "input_mappings": {"text": "content"},
                              "parameters": {"extractor_type": "text_extractor", "split_by": "none",
                                             "model": model}}})
    assert response.status_code == 200, response.text
    return str(bucket_id)


def _bulk_objects(runtime: Any, bucket_id: str, texts: list[str]) -> list[str]:
    """Bench set-up only: rows straight into the table, text bytes through the blob store."""
    with runtime.db.transaction() as session:
        bucket = session.get(Bucket, bucket_id)
        namespace_id = bucket.namespace_id
    ids, rows = [], []
    for text in texts:
        object_id, blob_id = new_id("object"), new_id("blob")
        key = f"{namespace_id}/{bucket_id}/{object_id}/{blob_id}"
        written = runtime.blobs.put_bytes(key, text.encode())
        rows.append({"object_id": object_id, "bucket_id": bucket_id, "namespace_id": namespace_id,
                     "status": "DRAFT", "metadata": {}, "source_details": [], "size_bytes": written.size,
                     "blobs": [{"blob_id": blob_id, "property": "content", "type": "text",
                                "properties": {"url": runtime.blobs.uri(key), "key": key},
                                "details": {"filename": "t.txt", "size_bytes": written.size,
                                            "mime_type": "text/plain", "hash": written.sha256}}]})
        ids.append(object_id)
    with runtime.db.transaction() as session:
        for start in range(0, len(rows), 5000):
            session.execute(insert(BucketObject), rows[start:start + 5000])
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


def add_objects_latency(client: TestClient, ids: list[str], count: int) -> float:
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": ids[:1]}).json()
    started = time.perf_counter()
    response = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/objects", json={"object_ids": ids[:count]})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text[:300]
    return elapsed


def submit_to_start_ms(client: TestClient, runtime: Any, ids: list[str]) -> float:
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": ids[:5]}).json()
    task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
    _wait(client, task["task_id"])
    with runtime.db.read_session() as session:
        events = session.execute(select(StatusEvent.entity_type, StatusEvent.to_status, StatusEvent.at).where(
            StatusEvent.entity_id.in_([batch["batch_id"], f"{batch['batch_id']}/tier_0"]))).all()
    submitted = next(at for kind, status, at in events if kind == "batch" and status == "PENDING")
    started = next(at for kind, status, at in events if kind == "tier" and status == "IN_PROGRESS")
    return (started - submitted).total_seconds() * 1000


def _batch_seconds(runtime: Any, batch_id: str) -> float:
    """Submit to completion, from the recorded status events (no polling granularity)."""
    with runtime.db.read_session() as session:
        events = dict(session.execute(select(StatusEvent.to_status, StatusEvent.at).where(
            StatusEvent.entity_type == "batch", StatusEvent.entity_id == batch_id)).all())
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
    return {"e2e_docs_per_s": round(engine_rate, 1), "raw_embed_per_s": round(raw_rate, 1),
            "e2e_over_raw": round(engine_rate / raw_rate, 3)}


class RssSampler:
    """Peak resident memory of this process and of the runner's worker processes, while running."""

    def __init__(self) -> None:
        self.peak_self = self.peak_workers = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss_mb(pid: int) -> float:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_self = max(self.peak_self, self._rss_mb(os.getpid()))
            workers = sum(self._rss_mb(child.pid) for child in multiprocessing.active_children() if child.pid)
            self.peak_workers = max(self.peak_workers, workers)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _run_sampled(client: TestClient, runtime: Any, ids: list[str]) -> dict[str, float]:
    batch = client.post("/v1/buckets/docs/batches?skip_validation=true", json={"object_ids": ids}).json()
    before = RssSampler._rss_mb(os.getpid())
    with RssSampler() as sampler:
        task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
        assert _wait(client, task["task_id"]) == "COMPLETED"
    return {"seconds": round(_batch_seconds(runtime, batch["batch_id"]), 1), "server_before_mb": round(before, 1),
            "server_peak_mb": round(sampler.peak_self, 1), "worker_peak_mb": round(sampler.peak_workers, 1)}


def big_batch(count: int, work: Path) -> dict[str, float]:
    client, runtime = _client(work / "big", manifest_chunk_rows=2000, extract_batch_size=1000)
    bucket_id = _bucket_and_collection(client, "wordllama")
    ids = _bulk_objects(runtime, bucket_id, [f"Object number {i} says hello." for i in range(count)])
    figures = {"add_objects_10k_s": round(add_objects_latency(client, ids, 10_000), 3),
               "add_objects_100k_s": round(add_objects_latency(client, ids, min(100_000, count)), 3),
               "submit_to_start_ms": round(submit_to_start_ms(client, runtime, ids), 1)}
    small = _run_sampled(client, runtime, ids[: count // 10])  # the same work at a tenth of the size
    large = _run_sampled(client, runtime, ids)
    figures.update({f"batch_{count // 10}_{k}": v for k, v in small.items()})
    figures.update({f"batch_{count}_{k}": v for k, v in large.items()})
    figures["peak_memory_growth_ratio_10x_objects"] = round(
        (large["server_peak_mb"] + large["worker_peak_mb"]) / (small["server_peak_mb"] + small["worker_peak_mb"]), 2)
    client.__exit__(None, None, None)
    runtime.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--big", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = {**big_batch(args.big, Path(tmp)), **end_to_end(args.docs, Path(tmp))}
    figures["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2))
    width = max(len(k) for k in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
