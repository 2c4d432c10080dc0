"""The engine on the local runner and on the Ray runner's two paths: the same text batch, documents/s each.

    python bench/engine.py [--docs 1500] [--model minilm] [--device cpu|cuda]

For each runner, a fresh data dir, the same deterministic paragraphs (one
document per object, split_by=none), a small warm-up batch first (loads the
model in the worker process / Ray actor), then the timed batch: submit ->
COMPLETED through manifest, runner, documents with lineage written to LanceDB.
  local     process pool, 1 worker process with all cores' torch threads
  ray       in-process Ray with all cores; 1 actor reserving all cores, one call per manifest chunk
  ray_data  in-process Ray with all cores; the tier as a Ray Data pipeline over its manifest
            (read_parquet -> map_batches with 1 stage actor using all cores' torch threads; it
            reserves all cores but one, which the read stage needs)
  raw       the model's own encode over the same texts in this process (the ceiling)
Ray Data starts a tier's stage actors with its dataset, so the warm-up cannot keep its model
loaded: its timed batch includes one actor start and one model load (as every tier's does).
With --device cuda (a machine with a GPU), the runners and raw run on the GPU.
Writes bench/results/engine.json; the Ray Data figures are flat keys (ray_data_*, local_docs_per_s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from batches import KEY, _bucket_and_collection, _bulk_objects, _wait  # noqa: E402
from text_extraction import paragraphs  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from strataflow.app import create_app  # noqa: E402
from strataflow.config import Settings  # noqa: E402
from strataflow.extractors.text_models import embed_texts, load_text_model  # noqa: E402
from strataflow.runtime import open_runtime  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "engine.json"


def through_engine(label: str, texts: list[str], model: str, device: str, work: Path) -> dict[str, float]:
    cores = os.cpu_count() or 1
    engine = "local" if label == "local" else "ray"
    settings = Settings(data_dir=work / label, api_key=KEY, task_poll_interval_s=0.05, engine=engine,
                        device=device, engine_processes=1, engine_threads=cores, ray_num_cpus=cores,
                        ray_actor_cpus=float(cores), ray_object_store_mb=512, ray_data=label == "ray_data")
    started = time.perf_counter()
    runtime = open_runtime(settings)  # starts the runner: for Ray, the local cluster
    startup_s = time.perf_counter() - started
    client = TestClient(create_app(runtime=runtime))
    client.__enter__()
    client.headers.update({"Authorization": f"Bearer {KEY}"})
    client.post("/v1/namespaces", json={"namespace_name": "bench"})
    client.headers["X-Namespace"] = "bench"
    try:
        bucket_id = _bucket_and_collection(client, model)
        ids = _bulk_objects(runtime, bucket_id, texts)
        warm = client.post("/v1/buckets/docs/batches", json={"object_ids": ids[:8]}).json()
        started = time.perf_counter()
        _wait(client, client.post(f"/v1/buckets/docs/batches/{warm['batch_id']}/submit", json={}).json()["task_id"])
        warm_up_s = time.perf_counter() - started
        batch = client.post("/v1/buckets/docs/batches", json={"object_ids": ids}).json()
        started = time.perf_counter()
        task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
        assert _wait(client, task["task_id"]) == "COMPLETED"
        elapsed = time.perf_counter() - started
    finally:
        client.__exit__(None, None, None)
        runtime.close()
    return {"docs_per_s": round(len(texts) / elapsed, 1), "seconds": round(elapsed, 2),
            "runner_start_s": round(startup_s, 2), "warm_up_batch_s": round(warm_up_s, 2)}


def raw_encode(texts: list[str], model: str, device: str) -> float:
    load_text_model(model, device)
    embed_texts(texts[:64], model, device)
    started = time.perf_counter()
    embed_texts(texts, model, device, batch_size=64)
    return round(len(texts) / (time.perf_counter() - started), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda needs a GPU; this machine has none")
    texts = paragraphs(args.docs)
    with tempfile.TemporaryDirectory(prefix="sf-bench-engine-") as tmp:
        local = through_engine("local", texts, args.model, args.device, Path(tmp))
        ray = through_engine("ray", texts, args.model, args.device, Path(tmp))
        ray_data = through_engine("ray_data", texts, args.model, args.device, Path(tmp))
    raw = raw_encode(texts, args.model, args.device)
    result: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "device": args.device},
        "docs": args.docs, "model": args.model,
        "local": local, "ray": ray, "raw_encode_per_s": raw,
        "ray_over_local": round(ray["docs_per_s"] / local["docs_per_s"], 3),
        "local_over_raw": round(local["docs_per_s"] / raw, 3), "ray_over_raw": round(ray["docs_per_s"] / raw, 3),
        "local_docs_per_s": local["docs_per_s"],
        "ray_data_docs_per_s": ray_data["docs_per_s"], "ray_data_seconds": ray_data["seconds"],
        "ray_data_runner_start_s": ray_data["runner_start_s"], "ray_data_warm_up_batch_s": ray_data["warm_up_batch_s"],
        "ray_data_over_local": round(ray_data["docs_per_s"] / local["docs_per_s"], 3),
        "ray_data_over_raw": round(ray_data["docs_per_s"] / raw, 3),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if args.device != "cpu":
        path = RESULTS.with_name(f"engine-{args.device.replace(':', '')}.json")
    else:
        path = RESULTS
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
