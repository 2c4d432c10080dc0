"""Retrieval quality and speed.

    python bench/retrieval.py [--docs 100000] [--queries 200] [--quality-only]

Quality: bench/data/retrieval_eval.json (200 passages, 50 queries; made by
bench/make_retrieval_eval.py) embedded with MiniLM into a real collection table, then searched
through the retriever pipeline four ways: vector (feature_search), full-text (text_search,
LanceDB's native BM25 index), hybrid with plain RRF, and hybrid with the default fusion
(rrf_coverage). The same for bench/data/catalog_eval.json (120 product records with model codes,
60 queries; made by bench/make_catalog_eval.py). Reports recall@10 and nDCG@10, overall and per
query kind.

Speed: 100,000 documents of 384 random unit vectors loaded straight into LanceDB (set-up only),
then p50/p99 of (a) a retriever execute (the pipeline in-process: plan, stage, fusion-free
feature_search with a raw vector, document views, pagination) and (b) a direct LanceDB query of
the same vectors returning the same columns, interleaved in one run; without a vector index
(exact scan) and with the IVF_HNSW_SQ index the index maintenance builds. HTTP and the
database lookup of a saved retriever are not in (a).
Writes bench/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from figures import Figure, print_figures, write_results

from strataflow.extractors.text_models import TEXT_MODELS, embed_texts
from strataflow.index.records import StoredDocument, table_schema, to_arrow
from strataflow.index.store import DocumentIndex
from strataflow.retrieval.metrics import score_ranking
from strataflow.retrieval.pipeline import Execution, ResultPage
from strataflow.retrieval.stages import normalise_stages
from strataflow.store.tables import Collection

HERE = Path(__file__).parent
COLUMN = "text_extractor_v1_all_minilm_l6_v2"
URI = "mixpeek://text_extractor@v1/all_minilm_l6_v2"


def collection(collection_id: str) -> Collection:
    spec = TEXT_MODELS["minilm"]
    return Collection(
        collection_id=collection_id,
        vector_indexes=[
            {
                "feature_uri": URI,
                "name": "all_minilm_l6_v2",
                "index": {"name": COLUMN, "dimensions": spec.dimensions, "inference_name": spec.model_name},
            }
        ],
    )


def load(index: DocumentIndex, collection_id: str, texts: list[str], vectors: np.ndarray) -> None:
    index.create_table(collection_id, {COLUMN: vectors.shape[1]})
    docs = [
        StoredDocument(
            document_id=f"d{i:06d}",
            collection_id=collection_id,
            payload={"text": t},
            internal={"lineage": {"root_object_id": f"obj{i}"}},
            vectors={COLUMN: v.tolist()},
            created_at="2026-01-01T00:00:00.000000+00:00",
            updated_at="2026-01-01T00:00:00.000000+00:00",
        )
        for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
    ]
    table = index._table(collection_id)  # bench set-up: bulk append, bypassing per-document upserts
    for start in range(0, len(docs), 10_000):
        table.add(to_arrow(docs[start : start + 10_000], table_schema({COLUMN: vectors.shape[1]})))


def execution(
    index: DocumentIndex, col: Collection, stage: dict[str, Any], inputs: dict[str, Any], size: int = 10
) -> Execution:
    return Execution(
        index=index, collections=[col], stages=normalise_stages([stage]), inputs=inputs, page=ResultPage(0, size)
    )


STAGES = {
    "vector": {
        "stage_name": "s",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [{"feature_uri": URI, "query": "{{INPUT.query}}", "top_k": 100}],
                "final_top_k": 100,
            },
        },
    },
    "full_text": {
        "stage_name": "s",
        "config": {"stage_id": "text_search", "parameters": {"query": "{{INPUT.query}}", "top_k": 100}},
    },
    "hybrid": {  # the default fusion (rrf_coverage)
        "stage_name": "s",
        "config": {
            "stage_id": "hybrid_search",
            "parameters": {"query": "{{INPUT.query}}", "feature_uri": URI, "top_k": 100, "final_top_k": 100},
        },
    },
    "hybrid_plain_rrf": {  # the earlier default, for comparison
        "stage_name": "s",
        "config": {
            "stage_id": "hybrid_search",
            "parameters": {
                "query": "{{INPUT.query}}",
                "feature_uri": URI,
                "top_k": 100,
                "final_top_k": 100,
                "fusion": "rrf",
            },
        },
    },
}
EVAL_SETS = {"places": "retrieval_eval.json", "catalog": "catalog_eval.json"}


def quality(workdir: Path, file_name: str) -> dict[str, Any]:
    data = json.loads((HERE / "data" / file_name).read_text())
    index = DocumentIndex(str(workdir / f"quality_{file_name}"))
    texts = [p["text"] for p in data["passages"]]
    ids = [p["id"] for p in data["passages"]]
    load(index, "col_eval", texts, embed_texts(texts, "minilm"))
    to_passage = {f"d{i:06d}": pid for i, pid in enumerate(ids)}
    col = collection("col_eval")
    report: dict[str, Any] = {}
    for mode, stage in STAGES.items():
        per_kind: dict[str, list[tuple[float, float]]] = {}
        for query in data["queries"]:
            out = execution(index, col, stage, {"query": query["query"]}, size=10).run()
            ranked = [to_passage[d["document_id"]] for d in out["documents"]]
            # the metrics evaluation runs use (strataflow.retrieval.metrics)
            scores = score_ranking(ranked, query["relevant"], 10, ["recall", "ndcg"])
            per_kind.setdefault(query["kind"], []).append((scores["recall"], scores["ndcg"]))
            per_kind.setdefault("all", []).append((scores["recall"], scores["ndcg"]))
        report[mode] = {
            kind: {
                "recall@10": round(statistics.fmean(r for r, _ in rows), 4),
                "ndcg@10": round(statistics.fmean(n for _, n in rows), 4),
                "queries": len(rows),
            }
            for kind, rows in per_kind.items()
        }
    return report


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


def speed(workdir: Path, docs: int, queries: int) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((docs, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = DocumentIndex(str(workdir / "speed"), vector_index_min_rows=min(50_000, docs))
    started = time.perf_counter()
    load(index, "col_speed", [f"passage {i}" for i in range(docs)], vectors)
    load_s = time.perf_counter() - started
    col = collection("col_speed")
    table = index._table("col_speed")
    columns = [f.name for f in table.schema if f.name not in (COLUMN, "search_text")] + ["_distance"]
    probes = rng.standard_normal((queries, 384)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    stage = {
        "stage_name": "s",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [{"feature_uri": URI, "query": "{{INPUT.vector}}", "top_k": 10}],
                "final_top_k": 10,
            },
        },
    }
    results: dict[str, Any] = {"documents": docs, "dimensions": 384, "queries": queries, "load_s": round(load_s, 1)}
    for label in ("exact_scan", "ivf_hnsw_sq_index"):
        if label == "ivf_hnsw_sq_index":
            started = time.perf_counter()
            index.maintain("col_speed")
            results["index_build_s"] = round(time.perf_counter() - started, 1)
            table = index._table("col_speed")
        retriever, direct = [], []
        for position, probe in enumerate(probes):
            vector = probe.tolist()
            run = [
                (
                    "direct",
                    lambda v=vector, t=table: (
                        t.search(v, vector_column_name=COLUMN)
                        .distance_type("cosine")
                        .select(columns)
                        .limit(10)
                        .to_arrow()
                        .to_pylist()
                    ),
                ),
                ("retriever", lambda v=vector: execution(index, col, stage, {"vector": v}).run()),
            ]
            if position % 2:
                run.reverse()  # alternate the order so neither side always runs on a warm cache
            for name, call in run:
                t0 = time.perf_counter()
                call()
                (direct if name == "direct" else retriever).append(time.perf_counter() - t0)
        warm = 5  # first calls load index pages and code paths
        r, d = percentiles(retriever[warm:]), percentiles(direct[warm:])
        results[label] = {
            "retriever": r,
            "direct_lancedb": d,
            "overhead_p50": round(r["p50_ms"] / d["p50_ms"] - 1, 3),
            "overhead_p99": round(r["p99_ms"] / d["p99_ms"] - 1, 3),
        }
    return results


def figures_of(out: dict[str, Any]) -> list[Figure]:
    figures = []
    for set_name, quality_ in out["quality"].items():
        inputs = {m: quality_[m]["all"]["ndcg@10"] for m in ("vector", "full_text")}
        best = max(inputs, key=lambda m: inputs[m])
        for mode in ("vector", "full_text", "hybrid_plain_rrf", "hybrid"):
            figures.append(
                Figure(
                    f"{set_name}_{mode}_ndcg10",
                    f"nDCG@10, {mode.replace('_', ' ')} ({set_name} set)",
                    quality_[mode]["all"]["ndcg@10"],
                    "nDCG",
                    "higher",
                    inputs[best] if mode.startswith("hybrid") else None,
                    f"better input ({best.replace('_', ' ')})" if mode.startswith("hybrid") else "",
                )
            )
    speed_ = out.get("speed")
    if not speed_:
        return figures
    for label in ("exact_scan", "ivf_hnsw_sq_index"):
        r, d = speed_[label]["retriever"], speed_[label]["direct_lancedb"]
        for p in ("p50", "p99"):
            figures.append(
                Figure(
                    f"{label}_{p}_ms",
                    f"retriever {p}, {speed_['documents']:,} docs, {label}",
                    r[f"{p}_ms"],
                    "ms",
                    "lower",
                    d[f"{p}_ms"],
                    "direct LanceDB query, same vectors",
                )
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--quality-only", action="store_true", help="skip the latency part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out: dict[str, Any] = {"quality": {name: quality(Path(tmp), file) for name, file in EVAL_SETS.items()}}
        if not args.quality_only:
            out["speed"] = speed(Path(tmp), args.docs, args.queries)
    figures = figures_of(out)
    print_figures(figures)
    print(f"wrote {write_results('retrieval', figures, out)}")


if __name__ == "__main__":
    main()
