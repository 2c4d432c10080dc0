"""Clustering quality and speed.

    python bench/clusters.py [--big 1000000] [--dims 384] [--skip-big]

Quality: scikit-learn's bundled `digits` (1,797 8x8 images, 64 features; shipped inside
scikit-learn, no download) loaded as a vector collection (zero-padded to the collection's 384
dimensions: padding changes no distance), clustered by a Strataflow k-means run (k=10) through the
real job (`engine_cluster_build`, vectors read from LanceDB), and by scikit-learn's KMeans on the
same float32 vectors with the same parameters. Reports the adjusted Rand index between the two
(goal: >= 0.98), each one's ARI against the true digits, and the fit time of each (Strataflow's
`fit_s`, measured inside the job once the vectors are read, against scikit-learn's `fit`).

Scale: N synthetic 384-d vectors (20 Gaussian blobs) bulk-loaded into LanceDB, then a Strataflow
k-means run (k=20) over all of them, which streams mini-batch k-means over the table; wall time of
the whole job and the peak resident memory it added, against scikit-learn's MiniBatchKMeans
fitting (and predicting) the same array held in memory.
Writes bench/results/clusters.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from figures import Figure, print_figures, write_results
from rss import RssSampler, rss_mb
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from strataflow.app import create_app
from strataflow.config import Settings
from strataflow.index.records import table_schema
from strataflow.runtime import Runtime, open_runtime
from strataflow.store.tables import Collection

KEY = "sk_bench_clusters_key_0123456789abcdef"
THREADS: int | None = None  # --threads: the same BLAS thread limit for Strataflow's job and scikit-learn
STAMP = "2026-01-01T00:00:00.000000+00:00"


def make_collection(client: TestClient, runtime: Runtime, name: str) -> tuple[str, str, str, int]:
    """A real text collection (its vector column is the MiniLM one, 384-d); returns id, uri, column, dims."""
    if client.post(
        "/v1/buckets", json={"bucket_name": "src", "bucket_schema": {"properties": {"content": {"type": "text"}}}}
    ).status_code not in (200, 409):
        raise RuntimeError("bucket")
    created = client.post(
        "/v1/collections",
        json={
            "collection_name": name,
            "source": {"type": "bucket", "bucket_ids": ["src"]},
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": "content"},
                "parameters": {"extractor_type": "text_extractor", "split_by": "none"},
            },
        },
    ).json()
    with runtime.db.read_session() as session:
        row = session.get(Collection, created["collection_id"])
        assert row is not None
        index = row.vector_indexes[0]
    return created["collection_id"], index["feature_uri"], index["index"]["name"], int(index["index"]["dimensions"])


def bulk_load(
    runtime: Runtime,
    collection_id: str,
    column: str,
    dims: int,
    vectors: np.ndarray,
    first: int,
    payloads: list[dict[str, Any]] | None = None,
) -> None:
    """Set-up only: append rows straight to the table as Arrow (per-document upserts would dominate)."""
    schema = table_schema({column: dims})
    n = len(vectors)
    columns: dict[str, Any] = {}
    for field in schema:
        if field.name == "document_id":
            columns[field.name] = pa.array([f"d{first + i:08d}" for i in range(n)])
        elif field.name == "collection_id":
            columns[field.name] = pa.array([collection_id] * n)
        elif field.name in ("created_at", "updated_at"):
            columns[field.name] = pa.array([STAMP] * n)
        elif field.name in ("payload", "internal"):
            texts = [json.dumps(p) for p in payloads] if payloads and field.name == "payload" else ["{}"] * n
            columns[field.name] = pa.array(texts, type=field.type)
        elif field.name == column:
            flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
            columns[field.name] = pa.FixedSizeListArray.from_arrays(flat, dims)
        else:
            columns[field.name] = pa.nulls(n, field.type)
    runtime.index._table(collection_id).add(pa.table(columns, schema=schema))


def run_cluster(client: TestClient, runtime: Runtime, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Create and execute a cluster; the job runs here, in this process (timed)."""
    cluster = client.post("/v1/clusters", json=body)
    assert cluster.status_code == 200, cluster.text
    cid = cluster.json()["cluster_id"]
    started = client.post(f"/v1/clusters/{cid}/execute", json={})
    assert started.status_code == 200, started.text
    began = time.monotonic()
    runtime.jobs.run_pending()
    wall = time.monotonic() - began
    run = client.get(f"/v1/clusters/{cid}/executions/{started.json()['run_id']}").json()
    assert run["status"] == "completed", run
    return run, wall


def labels_of(runtime: Runtime, run: dict[str, Any]) -> dict[str, int]:
    with runtime.db.read_session() as session:
        from strataflow.store.tables import ClusterRun

        row = session.get(ClusterRun, run["run_id"])
        assert row is not None and row.artifact_key
        key = row.artifact_key
    with runtime.blobs.open(key) as handle:
        table = pq.read_table(handle, columns=["document_id", "cluster_index"])
    return dict(zip(table.column("document_id").to_pylist(), table.column("cluster_index").to_pylist(), strict=True))


def digits(client: TestClient, runtime: Runtime) -> tuple[list[Figure], dict[str, Any]]:
    data = load_digits()
    cid, uri, column, dims = make_collection(client, runtime, "digits")
    padded = np.zeros((len(data.data), dims), dtype=np.float32)
    padded[:, : data.data.shape[1]] = data.data
    bulk_load(runtime, cid, column, dims, padded, 0, [{"digit": int(t)} for t in data.target])
    run, wall = run_cluster(
        client,
        runtime,
        {
            "cluster_name": "digits_kmeans",
            "collection_ids": [cid],
            "vector_config": {
                "feature_uris": [uri],
                "clustering_method": "kmeans",
                "kmeans_parameters": {"n_clusters": 10, "random_state": 0},
            },
        },
    )
    found = labels_of(runtime, run)
    ours = np.array([found[f"d{i:08d}"] for i in range(len(padded))])
    began = time.perf_counter()
    with threadpool_limits(limits=THREADS):
        reference = KMeans(n_clusters=10, random_state=0).fit(padded)
    sklearn_fit = time.perf_counter() - began
    ari = float(adjusted_rand_score(reference.labels_, ours))
    ours_fit = float(run["timings"]["fit_s"])
    figures = [
        Figure(
            "digits_ari_vs_sklearn",
            "digits: ARI of Strataflow k-means vs scikit-learn KMeans (same vectors)",
            ari,
            "ARI",
            "higher",
            1.0,
            "identical partitions",
            "goal >= 0.98",
        ),
        Figure(
            "digits_fit_speed_share",
            "digits: k-means fit speed, Strataflow job vs scikit-learn in-process",
            sklearn_fit / ours_fit if ours_fit else 0.0,
            "x sklearn speed",
            "higher",
            1.0,
            "scikit-learn KMeans.fit on the same array",
            "goal >= 0.8 once vectors are read",
        ),
        Figure(
            "digits_job_wall_s",
            "digits: whole run (read, fit, metrics, keywords, Parquet)",
            wall,
            "s",
            "lower",
            sklearn_fit,
            "scikit-learn KMeans.fit alone",
        ),
    ]
    details = {
        "ari_vs_sklearn": ari,
        "ari_ours_vs_truth": float(adjusted_rand_score(data.target, ours)),
        "ari_sklearn_vs_truth": float(adjusted_rand_score(data.target, reference.labels_)),
        "fit_s": ours_fit,
        "sklearn_fit_s": sklearn_fit,
        "job_wall_s": wall,
        "timings": run["timings"],
        "metrics": run["metrics"],
    }
    return figures, details


def blobs(n: int, dims: int, start: int, rng_seed: int = 11) -> np.ndarray:
    """Rows [start, start+n) of a fixed 20-blob data set (each row's values depend only on its index)."""
    centres = np.random.default_rng(rng_seed).normal(0, 1, (20, dims)).astype(np.float32)
    rng = np.random.default_rng(rng_seed + start)
    labels = (np.arange(start, start + n) * 7919) % 20
    return centres[labels] + rng.normal(0, 0.35, (n, dims)).astype(np.float32)


def big(client: TestClient, runtime: Runtime, n: int) -> tuple[list[Figure], dict[str, Any]]:
    cid, uri, column, dims = make_collection(client, runtime, "synthetic")
    began = time.monotonic()
    for start in range(0, n, 50_000):
        bulk_load(runtime, cid, column, dims, blobs(min(50_000, n - start), dims, start), start)
    load_s = time.monotonic() - began
    gc.collect()
    base = rss_mb(os.getpid())
    with RssSampler() as sampler:
        run, wall = run_cluster(
            client,
            runtime,
            {
                "cluster_name": "synthetic_kmeans",
                "collection_ids": [cid],
                "vector_config": {
                    "feature_uris": [uri],
                    "clustering_method": "kmeans",
                    "sample_size": n,
                    "kmeans_parameters": {"n_clusters": 20, "random_state": 0},
                },
            },
        )
    ours_mb = sampler.peak_self - base
    gc.collect()
    base = rss_mb(os.getpid())
    with RssSampler() as sampler:  # the array counts in scikit-learn's memory, as the run's matrix in ours
        began = time.monotonic()
        matrix = np.vstack([blobs(min(50_000, n - s), dims, s) for s in range(0, n, 50_000)])
        generate_s = time.monotonic() - began
        began = time.monotonic()  # timed: fit+predict only (generating the array is not scikit-learn's work)
        with threadpool_limits(limits=THREADS):
            model = MiniBatchKMeans(n_clusters=20, random_state=0, batch_size=4096, n_init=1).fit(matrix)
            model.predict(matrix)
        sklearn_wall = time.monotonic() - began
    sklearn_mb = sampler.peak_self - base
    del matrix
    figures = [
        Figure(
            "big_kmeans_wall_s",
            f"{n:,} x {dims}: Strataflow mini-batch k-means run (read from LanceDB, output collection written)",
            wall,
            "s",
            "lower",
            sklearn_wall,
            "scikit-learn MiniBatchKMeans fit+predict on the array in memory",
        ),
        Figure(
            "big_kmeans_peak_mb",
            f"{n:,} x {dims}: peak memory added by the run",
            ours_mb,
            "MiB",
            "lower",
            sklearn_mb,
            "scikit-learn with the array in memory",
        ),
    ]
    details = {
        "points": n,
        "dims": dims,
        "threads": THREADS or 0,
        "load_avg": os.getloadavg()[0],
        "load_s": load_s,
        "wall_s": wall,
        "peak_mb": ours_mb,
        "sklearn_wall_s": sklearn_wall,
        "sklearn_generate_s": generate_s,
        "sklearn_peak_mb": sklearn_mb,
        "timings": run["timings"],
        "metrics": run["metrics"],
        "num_clusters": run["num_clusters"],
    }
    return figures, details


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    parser.add_argument("--big", type=int, default=1_000_000, help="points of the scale test")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=0, help="BLAS threads of both sides (cluster_threads; 0 = libraries' default)"
    )
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads or None
    with tempfile.TemporaryDirectory(prefix="bench-clusters-") as folder:
        extra = {"cluster_threads": args.threads} if args.threads else {}
        runtime = open_runtime(Settings(data_dir=Path(folder) / "data", api_key=KEY, **extra))
        try:
            with TestClient(create_app(runtime=runtime, run_background=False)) as client:
                client.headers.update({"Authorization": f"Bearer {KEY}"})
                client.post("/v1/namespaces", json={"namespace_name": "bench"})
                client.headers.update({"X-Namespace": "bench"})
                figures, details = digits(client, runtime)
                all_details: dict[str, Any] = {"digits": details}
                if not args.skip_big:
                    more, big_details = big(client, runtime, args.big)
                    figures += more
                    all_details["big"] = big_details
        finally:
            runtime.close()
    write_results("clusters", figures, all_details)
    print_figures(figures)
    print({k: {kk: vv for kk, vv in v.items() if kk not in ("metrics", "timings")} for k, v in all_details.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
