"""The engine on the local runner and on the Ray runner's two paths: the same text batch, documents/s each.

    python bench/engine.py [--docs 1500] [--model minilm] [--device cpu|cuda] [--runners local,ray,ray_data]

For each runner, a fresh data dir, the same deterministic paragraphs (one
document per object, split_by=none), a small warm-up batch first (loads the
model in the worker process / Ray actor), then the timed batch: submit ->
COMPLETED through manifest, runner, documents with lineage written to LanceDB.
  local     process pool, 1 worker process with all cores' torch threads
  ray       in-process Ray with all cores; 1 actor reserving all cores, one call per manifest chunk
  ray_data  in-process Ray with all cores; the tier as a Ray Data pipeline over its manifest
            (read_parquet -> map_batches with 1 stage actor using all cores' torch threads; it
            reserves all cores but one, which the read stage needs)
  raw       the model's own encode over the same texts in this process (the ceiling), once before
            the runners and once after: the figure is the mean of the two passes
Ray Data starts a tier's stage actors with its dataset, so the warm-up cannot keep its model
loaded: its timed batch includes one actor start and one model load (as every tier's does).
With --device cuda (a machine with a GPU), the runners and raw run on the GPU.
--runners picks which of local, ray and ray_data run (default: all); raw always runs. The
*_vs_local figures need the local run, so they are left out when local does not run.
Each runner's details carry the tier's phase times (inputs, extraction, writes, in seconds:
summed over its batches, so with the pipelined local path they overlap and exceed the wall time).
Writes bench/results/engine.json (engine-cuda.json with --device cuda) in the shape of figures.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from batches import KEY, _bucket_and_collection, _bulk_objects, _wait
from fastapi.testclient import TestClient
from figures import Figure, print_figures, write_results
from text_extraction import paragraphs

from strataflow.app import create_app
from strataflow.config import Settings
from strataflow.extractors.text_models import embed_texts, load_text_model
from strataflow.runtime import open_runtime

RUNNERS = ("local", "ray", "ray_data")


def through_engine(label: str, texts: list[str], model: str, device: str, work: Path) -> dict[str, float]:
    cores = os.cpu_count() or 1
    engine = "local" if label == "local" else "ray"
    settings = Settings(
        data_dir=work / label,
        api_key=KEY,
        # The default poll interval (1 s): a submit wakes the scheduler here directly, and a faster
        # poll only takes CPU from the extraction it measures (every loop thread, every interval).
        engine=engine,
        device=device,
        engine_processes=1,
        engine_threads=cores,
        ray_num_cpus=cores,
        ray_actor_cpus=float(cores),
        ray_object_store_mb=512,
        ray_data=label == "ray_data",
    )
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
        phases = _phases(client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}").json())
        phases.update(_first_batch(runtime, batch["batch_id"]))
    finally:
        client.__exit__(None, None, None)
        runtime.close()
    return {
        "docs_per_s": round(len(texts) / elapsed, 1),
        "seconds": round(elapsed, 2),
        "runner_start_s": round(startup_s, 2),
        "warm_up_batch_s": round(warm_up_s, 2),
        **phases,
    }


def _phases(batch: dict[str, Any]) -> dict[str, float]:
    """The timed batch's tier: its duration and its collection's time in inputs, extraction and writes."""
    tier = batch["tier_tasks"][0]
    timing = tier["extractor_jobs"][0].get("timing_ms") or {}
    return {
        "tier_s": round((tier.get("duration_ms") or 0) / 1000, 2),
        **{f"{name}_s": round(ms / 1000, 2) for name, ms in timing.items()},
    }


def _first_batch(runtime: Any, batch_id: str) -> dict[str, float]:
    """Ray Data's wait from the dataset's start to its first batch, from the tier's own log line."""
    from strataflow.store.tables import BatchTier

    with runtime.db.read_session() as session:
        tier = session.get(BatchTier, (batch_id, 0))
        lines = list(tier.logs) if tier is not None else []
    for line in lines:
        if str(line).startswith("ray data: first batch after "):
            return {"first_batch_s": float(str(line).split("after ", 1)[1].split("s", 1)[0])}
    return {}


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
    parser.add_argument(
        "--runners", default=",".join(RUNNERS), help=f"comma-separated, any of {','.join(RUNNERS)} (default: all)"
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.runners.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(RUNNERS))
    if unknown or not chosen:
        parser.error(f"--runners: unknown {unknown or 'empty list'}; choose from {','.join(RUNNERS)}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda needs a GPU; this machine has none")
    texts = paragraphs(args.docs)
    # The floor is measured before and after the runners, and their mean is the figure: on a shared
    # machine one pass of it swung from 74 to 92 docs/s between runs minutes apart.
    raw_passes = [raw_encode(texts, args.model, args.device)]
    with tempfile.TemporaryDirectory(prefix="sf-bench-engine-") as tmp:
        runs = {
            label: through_engine(label, texts, args.model, args.device, Path(tmp))
            for label in RUNNERS
            if label in chosen
        }
    raw_passes.append(raw_encode(texts, args.model, args.device))
    raw = round(sum(raw_passes) / len(raw_passes), 1)
    raw_name = f"the model's own encode ({args.model}), same texts, in-process"
    names = {
        "local": "the local process pool",
        "ray": "Ray actors, per chunk",
        "ray_data": "Ray Data over the manifest",
    }
    figures = [
        Figure(
            f"{label}_docs_per_s",
            f"text batch through {names[label]}",
            run["docs_per_s"],
            "docs/s",
            "higher",
            raw,
            raw_name,
        )
        for label, run in runs.items()
    ]
    figures += [
        Figure(
            f"{label}_vs_local",
            f"{names[label]} vs the local pool",
            run["docs_per_s"],
            "docs/s",
            "higher",
            runs["local"]["docs_per_s"],
            "the local pool, same batch",
        )
        for label, run in runs.items()
        if label != "local" and "local" in runs
    ]
    details = {
        "device": args.device,
        "docs": args.docs,
        "model": args.model,
        "raw_encode_per_s": raw,
        "raw_encode_passes_per_s": raw_passes,
        **runs,
    }
    write_results("engine" if args.device == "cpu" else f"engine-{args.device.replace(':', '')}", figures, details)
    print_figures(figures)


if __name__ == "__main__":
    main()
