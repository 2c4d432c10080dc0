"""`target_collection_id` on an execute: the answer's documents written into a collection of their own.

Each returned document becomes a document of the target: the result's fields (the source's
user fields, what the stages added, its `score`) as payload; the source's stored vectors where
the target has an index of the same name, so it is searchable on the same features; and its
origin in `_internal.lineage` (source document and collection, root object, the execution and
the retriever). Its id is derived from the target, the retriever and the source document, so
running the same retriever into the same collection again updates those documents in place
(their `created_at` kept by the index). An ad-hoc execute has no retriever: its id derives from the
execution, and every run writes new documents.
"""

from __future__ import annotations

from typing import Any

from strataflow.index.records import StoredDocument, timestamp
from strataflow.index.store import DocumentIndex
from strataflow.retrieval.pipeline import Execution
from strataflow.services.documents.model import ECHOED_KEYS, derived_document_id, vector_names
from strataflow.store.tables import Collection

_RESULT_ONLY = frozenset({"search_scores", "_expanded", "_vectors", "vector_hydration_incomplete"})


def _payload(result: dict[str, Any], vectors: set[str]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ECHOED_KEYS and k not in _RESULT_ONLY and k not in vectors}


def _sources(index: DocumentIndex, results: list[dict[str, Any]]) -> dict[tuple[str, str], StoredDocument]:
    """The source documents of the results, with their vectors, by (collection, id)."""
    found: dict[tuple[str, str], StoredDocument] = {}
    for collection_id in {r["collection_id"] for r in results}:
        ids = [r["document_id"] for r in results if r["collection_id"] == collection_id]
        for doc in index.get_many(collection_id, ids, with_vectors=True):
            found[(collection_id, doc.document_id)] = doc
    return found


def write_results(
    index: DocumentIndex, target: Collection, run: Execution, results: list[dict[str, Any]]
) -> dict[str, Any]:
    """Write the results into `target`; the execute's `written_to` report."""
    usable = [r for r in results if r.get("document_id") and r.get("collection_id")]
    sources = _sources(index, usable)
    target_vectors = vector_names(target)
    now = timestamp()
    written: list[StoredDocument] = []
    for result in usable:
        source = sources.get((result["collection_id"], result["document_id"]))
        if source is None:  # deleted between the search and now: nothing left to copy
            continue
        origin = run.retriever_id or run.execution_id
        document_id = derived_document_id(
            target.collection_id,
            "retriever",
            origin,
            {"collection_id": source.collection_id, "document_id": source.document_id},
        )
        lineage = {
            "source_type": "collection",
            "source_document_id": source.document_id,
            "source_collection_id": source.collection_id,
            "root_object_id": source.lineage.get("root_object_id"),
            "root_bucket_id": source.lineage.get("root_bucket_id"),
            "execution_id": run.execution_id,
            "retriever_id": run.retriever_id,
        }
        internal = {
            "namespace_id": target.namespace_id,
            "lineage": {k: v for k, v in lineage.items() if v is not None},
            "metadata": {"ingestion_status": "COMPLETED", "created_by": "retriever"},
        }
        vectors = {name: value for name, value in source.vectors.items() if name in target_vectors}
        payload = _payload(result, set(source.vectors))
        written.append(StoredDocument(document_id, target.collection_id, payload, internal, vectors, now, now))
    index.upsert(target.collection_id, written)  # a rewritten document keeps its created_at
    return {
        "collection_id": target.collection_id,
        "documents_written": len(written),
        "documents_skipped": len(results) - len(written),
        "document_ids": [d.document_id for d in written],
    }
