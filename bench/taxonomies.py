"""Taxonomy enrichment speed: apply-taxonomy against the same retriever run alone.

    python bench/taxonomies.py [--docs 10000] [--nodes 50] [--batch-size 1000] [--parallelism 4]

A real runtime (SQLite, LanceDB in a temp dir) and the real API: a node collection and a
documents collection (text_extractor, MiniLM vector index), a retriever over the nodes
(feature_search, the query is a vector input), a flat taxonomy whose input mapping is each
document's own vector and whose enrichment copies the node's title. Nodes and documents are
bulk-loaded with random unit vectors (set-up only). Then, in one run on the same cores:

- apply-taxonomy: POST /v1/collections/{id}/apply-taxonomy, the task run to the end by the job
  runner in this process (read documents with vectors in chunks, join on `parallelism` threads,
  merge, write back);
- baseline (run before and after, averaged): the same retriever's pipeline run alone for every
  document's vector, over the same documents read the same way, writing nothing.

The figure is documents per second of apply-taxonomy; the ratio to the baseline is the share
of the bare retriever's speed the whole materialisation keeps (goal >= 0.8).
Writes bench/results/taxonomies.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from figures import Figure, print_figures, write_results

from strataflow.app import create_app
from strataflow.config import Settings
from strataflow.index.records import StoredDocument, table_schema, to_arrow
from strataflow.retrieval.inputs import validate_inputs
from strataflow.retrieval.pipeline import Execution, ResultPage
from strataflow.runtime import Runtime, open_runtime
from strataflow.store.tables import Collection, Retriever

KEY = "sk_bench_taxonomies_0123456789abcdef"
SCHEMA = {"properties": {"content": {"type": "text"}, "title": {"type": "string"}}}
STAMP = "2026-01-01T00:00:00.000000+00:00"


def collection(client: TestClient, name: str, bucket: str) -> dict[str, Any]:
    client.post("/v1/buckets", json={"bucket_name": bucket, "bucket_schema": SCHEMA}).raise_for_status()
    response = client.post(
        "/v1/collections",
        json={
            "collection_name": name,
            "source": {"type": "bucket", "bucket_ids": [bucket]},
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": "content"},
                "field_passthrough": [{"source_path": "title"}],
                "parameters": {"extractor_type": "text_extractor", "split_by": "none", "model": "minilm"},
            },
        },
    )
    response.raise_for_status()
    return dict(response.json())


def bulk_load(runtime: Runtime, col: dict[str, Any], count: int, prefix: str, rng: np.random.Generator) -> str:
    """Documents with random unit vectors, appended straight to the table (set-up, not measured)."""
    column = col["vector_indexes"][0]["index"]["name"]
    dims = int(col["vector_indexes"][0]["index"]["dimensions"])
    vectors = rng.standard_normal((count, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    table = runtime.index._table(col["collection_id"])  # bench set-up: bulk append
    for start in range(0, count, 5000):
        docs = [
            StoredDocument(
                document_id=f"{prefix}{i:07d}",
                collection_id=col["collection_id"],
                payload={"text": f"{prefix} {i}", "title": f"{prefix} {i}"},
                internal={"lineage": {"root_object_id": f"obj{i}"}},
                vectors={column: v.tolist()},
                created_at=STAMP,
                updated_at=STAMP,
            )
            for i, v in zip(range(start, min(count, start + 5000)), vectors[start : start + 5000], strict=True)
        ]
        table.add(to_arrow(docs, table_schema({column: dims})))
    return column


def retriever_alone(runtime: Runtime, retriever_id: str, docs_id: str, column: str, batch_size: int) -> int:
    """The retriever's pipeline for every document's vector, documents read as the job reads them."""
    with runtime.db.read_session() as session:
        retriever = session.get(Retriever, retriever_id)
        assert retriever is not None
        collections = [session.get(Collection, cid) for cid in retriever.collection_ids]
        stages, schema = list(retriever.stages), dict(retriever.input_schema)
        session.expunge_all()
    done, after = 0, None
    while True:
        where = f"document_id > '{after}'" if after else None
        chunk = runtime.index.query(docs_id, where, order=[("document_id", True)], limit=batch_size, with_vectors=True)
        if not chunk:
            return done
        for doc in chunk:
            inputs = validate_inputs(schema, {"vec": list(doc.vectors[column] or [])})
            Execution(
                index=runtime.index,
                collections=[c for c in collections if c],
                stages=stages,
                inputs=inputs,
                page=ResultPage(0, 1),
            ).run()
        done += len(chunk)
        after = chunk[-1].document_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--parallelism", type=int, default=4, help="apply-taxonomy's parallelism (the contract's default)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        runtime = open_runtime(Settings(data_dir=Path(tmp) / "data", api_key=KEY))
        client = TestClient(create_app(runtime=runtime))  # no lifespan: jobs run here, when measured
        client.headers.update({"Authorization": f"Bearer {KEY}"})
        client.post("/v1/namespaces", json={"namespace_name": "bench", "feature_extractors": []}).raise_for_status()
        client.headers.update({"X-Namespace": "bench"})
        nodes = collection(client, "nodes", "ref")
        docs = collection(client, "docs", "src")
        bulk_load(runtime, nodes, args.nodes, "node", rng)
        column = bulk_load(runtime, docs, args.docs, "doc", rng)
        uri = nodes["vector_indexes"][0]["feature_uri"]
        retriever = client.post(
            "/v1/retrievers",
            json={
                "retriever_name": "nodes_by_vector",
                "collection_identifiers": ["nodes"],
                "input_schema": {"vec": {"type": "array", "required": True}},
                "stages": [
                    {
                        "stage_name": "s",
                        "config": {
                            "stage_id": "feature_search",
                            "parameters": {
                                "searches": [{"feature_uri": uri, "query": "{{INPUT.vec}}", "top_k": 1}],
                                "final_top_k": 1,
                            },
                        },
                    }
                ],
            },
        )
        retriever.raise_for_status()
        rid = retriever.json()["retriever_id"]
        taxonomy = client.post(
            "/v1/taxonomies",
            json={
                "taxonomy_name": "bench",
                "config": {
                    "taxonomy_type": "flat",
                    "retriever_id": rid,
                    "input_mappings": [{"input_key": "vec", "source_type": "vector", "path": uri}],
                    "source_collection": {
                        "collection_id": nodes["collection_id"],
                        "enrichment_fields": [{"field_path": "title", "target_field": "category"}],
                    },
                },
            },
        )
        taxonomy.raise_for_status()
        tid = taxonomy.json()["taxonomy_id"]
        client.patch("/v1/collections/docs", json={"taxonomy_applications": [{"taxonomy_id": tid}]}).raise_for_status()

        # The baseline runs before and after apply-taxonomy and is averaged: on a shared, loaded
        # machine one side measured alone would catch whatever load the moment had.
        clock = time.perf_counter()
        alone = retriever_alone(runtime, rid, docs["collection_id"], column, args.batch_size)
        baseline_s = time.perf_counter() - clock

        clock = time.perf_counter()
        answer = client.post(
            "/v1/collections/docs/apply-taxonomy",
            json={"taxonomy_id": tid, "batch_size": args.batch_size, "parallelism": args.parallelism},
        )
        answer.raise_for_status()
        ran = runtime.jobs.run_pending()
        apply_s = time.perf_counter() - clock
        clock = time.perf_counter()
        retriever_alone(runtime, rid, docs["collection_id"], column, args.batch_size)
        baseline_s = (baseline_s + time.perf_counter() - clock) / 2
        task = client.get(f"/v1/tasks/{answer.json()['task_id']}").json()
        progress = task["additional_data"]["progress"]
        enriched = runtime.index.count(docs["collection_id"], "internal IS NOT NULL")
        sample = runtime.index.query(docs["collection_id"], None, limit=1)[0]
        runtime.close()
    assert ran == 1 and task["status"] == "COMPLETED" and progress["processed"] == args.docs == alone, task
    assert sample.payload.get("category", "").startswith("node "), sample.payload
    figures = [
        Figure(
            "apply_docs_per_s",
            f"apply-taxonomy, documents enriched per second ({args.docs} docs, {args.nodes} nodes)",
            args.docs / apply_s,
            "docs/s",
            "higher",
            alone / baseline_s,
            "the same retriever run alone over the same documents, writing nothing",
        )
    ]
    print_figures(figures)
    write_results(
        "taxonomies",
        figures,
        {
            "docs": args.docs,
            "nodes": args.nodes,
            "batch_size": args.batch_size,
            "parallelism": args.parallelism,
            "apply_s": apply_s,
            "baseline_s": baseline_s,
            "progress": progress,
            "documents_in_table": enriched,
        },
    )


if __name__ == "__main__":
    main()
