"""Text extraction throughput: the text extractor against the raw embedding model, on the same texts.

    python bench/text_extraction.py [--paragraphs 5000] [--models minilm,wordllama]

For each model, in one process and on the same 5,000 paragraphs:
  raw        the model's own encode call over all paragraphs (texts/s)
  extractor  TextExtractor.extract, one row per paragraph, split_by=none (documents/s)
  pipeline   run_collection: inputs resolved, documents built with lineage, written to LanceDB (documents/s)
The ratio extractor/raw is what the extractor's own work (chunking, bookkeeping)
costs on top of the model. Models are loaded and warmed up before any timing.
Writes bench/results/text_extraction.json (bench/figures.py shape).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from figures import Figure, print_figures, write_results

from strataflow.extractors.base import ExtractContext, ExtractorInput
from strataflow.extractors.registry import parse_parameters
from strataflow.extractors.text import TextExtractor
from strataflow.extractors.text_models import TEXT_MODELS, load_text_model

# Paragraphs are composed from these clauses with a fixed seed: varied lengths and words,
# the same texts on every run.
SUBJECTS = [
    "The harbour master",
    "A young engineer",
    "The old library",
    "Our delivery team",
    "The river",
    "A migrating flock",
    "The city council",
    "The night train",
    "A small bakery",
    "The research vessel",
]
VERBS = [
    "described",
    "measured",
    "repaired",
    "photographed",
    "questioned",
    "celebrated",
    "mapped",
    "ignored",
    "rebuilt",
    "studied",
]
OBJECTS = [
    "the northern bridge",
    "an unusual storm front",
    "the budget for next spring",
    "a forgotten archive",
    "the tidal patterns",
    "several damaged turbines",
    "the festival schedule",
    "a rare orchid",
    "the fibre network",
    "the winter harvest",
]
TAILS = [
    "before sunrise.",
    "with great care.",
    "despite the rain.",
    "for the third time this year.",
    "while the town slept.",
    "and published the results.",
    "under difficult conditions.",
    "to everyone's surprise.",
    "in less than an hour.",
    "after a long debate.",
]


def paragraphs(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        sentences = [
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}"
            for _ in range(rng.randint(3, 7))
        ]
        out.append(" ".join(sentences))
    return out


def time_raw(model_key: str, texts: list[str], batch_size: int) -> float:
    model = load_text_model(model_key)
    started = time.perf_counter()
    if model_key == "minilm":
        model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
    else:
        model.embed(texts, batch_size=batch_size)
    return time.perf_counter() - started


def time_extractor(model_key: str, texts: list[str], batch_size: int, work: Path) -> tuple[float, int]:
    extractor = TextExtractor()
    params = parse_parameters(extractor, {"model": model_key, "batch_size": batch_size})
    rows = [ExtractorInput(f"row{i}", {"text": t}) for i, t in enumerate(texts)]
    started = time.perf_counter()
    results = extractor.extract(rows, params, ExtractContext(work))
    elapsed = time.perf_counter() - started
    assert not any(r.failed for r in results)
    return elapsed, sum(len(r.documents) for r in results)


def time_pipeline(model_key: str, texts: list[str], batch_size: int, work: Path) -> tuple[float, int]:
    """run_collection over in-memory source rows (text in a metadata field): extraction plus LanceDB writes."""
    from strataflow.blobs.local import LocalBlobStore
    from strataflow.engine.tiers.collection_run import RunContext
    from strataflow.engine.tiers.overlap import run_collection
    from strataflow.engine.tiers.records import SourceRecord
    from strataflow.index.store import DocumentIndex
    from strataflow.store.tables import Collection

    index = DocumentIndex(str(work / "index"))
    storage = f"text_extractor_v1_{'all_minilm_l6_v2' if model_key == 'minilm' else 'wordllama_l2_supercat_256'}"
    dims = TEXT_MODELS[model_key].dimensions
    collection = Collection(
        collection_id="col_benchmark",
        namespace_id="ns_bench",
        source={"type": "bucket", "bucket_ids": ["bkt_bench"]},
        input_schema={"properties": {"body": {"type": "string"}}},
        feature_extractor={
            "feature_extractor_name": "text_extractor",
            "version": "v1",
            "parameters": {"extractor_type": "text_extractor", "model": model_key, "batch_size": batch_size},
            "input_mappings": {"text": "body"},
            "field_passthrough": [],
            "include_all_source_fields": False,
        },
        vector_indexes=[{"index": {"name": storage, "dimensions": dims}}],
    )
    index.create_table(collection.collection_id, {storage: dims})
    records = [SourceRecord("bucket", f"obj_{i:08d}", "bkt_bench", {"body": t}) for i, t in enumerate(texts)]
    context = RunContext(
        blobs=LocalBlobStore.from_data_dir(work / "data", "http://127.0.0.1"),
        index=index,
        work_root=work / "scratch",
        batch_size=1000,
    )
    started = time.perf_counter()
    result = run_collection(context, collection, records)
    elapsed = time.perf_counter() - started
    assert not result.failures and index.count(collection.collection_id) == result.documents_written
    return elapsed, result.documents_written


def bench_model(model_key: str, texts: list[str], batch_size: int) -> dict[str, Any]:
    load_text_model(model_key)
    time_raw(model_key, texts[:64], batch_size)  # warm-up: first-call allocations, thread pools
    raw = time_raw(model_key, texts, batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        extract_s, documents = time_extractor(model_key, texts, batch_size, Path(tmp))
        pipeline_s, written = time_pipeline(model_key, texts, batch_size, Path(tmp))
    figures = {
        "model": TEXT_MODELS[model_key].model_name,
        "dimensions": TEXT_MODELS[model_key].dimensions,
        "texts": len(texts),
        "raw_encode_s": round(raw, 3),
        "raw_encode_texts_per_s": round(len(texts) / raw, 1),
        "extractor_s": round(extract_s, 3),
        "extractor_documents": documents,
        "extractor_documents_per_s": round(documents / extract_s, 1),
        "extractor_to_raw_ratio": round((documents / extract_s) / (len(texts) / raw), 3),
        "pipeline_s": round(pipeline_s, 3),
        "pipeline_documents_per_s": round(written / pipeline_s, 1),
        "pipeline_to_raw_ratio": round((written / pipeline_s) / (len(texts) / raw), 3),
    }
    print(json.dumps(figures, indent=2))
    return figures


def figures_of(models: dict[str, dict[str, Any]]) -> list[Figure]:
    figures = []
    for key, m in models.items():
        raw = m["raw_encode_texts_per_s"]
        raw_name = f"{key} encode alone, same {m['texts']} texts"
        figures += [
            Figure(
                f"{key}_extractor_docs_per_s",
                f"text extractor ({key})",
                m["extractor_documents_per_s"],
                "docs/s",
                "higher",
                raw,
                raw_name,
            ),
            Figure(
                f"{key}_pipeline_docs_per_s",
                f"collection pipeline to LanceDB ({key})",
                m["pipeline_documents_per_s"],
                "docs/s",
                "higher",
                raw,
                raw_name,
            ),
        ]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=5000)
    parser.add_argument("--models", default="minilm,wordllama")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    texts = paragraphs(args.paragraphs)
    words = sum(len(t.split()) for t in texts)
    report = {
        "paragraphs": len(texts),
        "mean_words_per_paragraph": round(words / len(texts), 1),
        "batch_size": args.batch_size,
        "models": {key: bench_model(key, texts, args.batch_size) for key in args.models.split(",")},
    }
    figures = figures_of(report["models"])
    print_figures(figures)
    print(f"wrote {write_results('text_extraction', figures, report)}")


if __name__ == "__main__":
    main()
