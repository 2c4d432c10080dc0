"""Writing a run into its cluster's output collection (services/clusters/output_collection.py).

`write` adds the run's documents (ids derived from the run, so a re-run job rewrites the same
rows); once the run is the cluster's current one, `keep_only` removes every other run's documents.
A run that fails or is canceled before that removes its own (`drop`), so the collection holds the
previous run's documents again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from strataflow.blobs import BlobStore
from strataflow.index.records import SEARCH_TEXT_COLUMN, StoredDocument, timestamp
from strataflow.index.store import DocumentIndex
from strataflow.services.clusters.artifact import NOISE, read_batches
from strataflow.services.documents.crud import where_of
from strataflow.store.tables import Collection

BATCH = 10_000
MEMBER_BATCH = 65_536  # member rows per append when a whole run is written (columnar, below)


def _id(run_id: str, *parts: str) -> str:
    return "doc_" + hashlib.sha256("/".join((run_id, *parts)).encode()).hexdigest()[:24]


def _document(
    collection: Collection, document_id: str, payload: dict[str, Any], vectors: dict[str, Any]
) -> StoredDocument:
    now = timestamp()
    return StoredDocument(document_id, collection.collection_id, payload, _internal(collection), vectors, now, now)


def _internal(collection: Collection) -> dict[str, Any]:
    return {
        "namespace_id": collection.namespace_id,
        "lineage": {"source_type": "cluster"},
        "metadata": {"ingestion_status": "COMPLETED", "created_by": "cluster_run"},
    }


def _centroid_vectors(
    collection: Collection, feature_uris: list[str], centroid: list[float], dimensions: dict[str, int]
) -> dict[str, Any]:
    """The centroid split into one block per feature URI, each under the collection's vector of that
    feature (a per-feature output collection holds one of them)."""
    vectors: dict[str, Any] = {}
    offset = 0
    by_uri = {d.get("feature_uri"): d["index"] for d in collection.vector_indexes}
    for uri in feature_uris:
        index = by_uri.get(uri)
        dims = int(index["dimensions"]) if index is not None else dimensions.get(uri, 0)
        if index is not None:
            vectors[index["name"]] = centroid[offset : offset + dims]
        offset += dims
    return vectors if offset == len(centroid) else {}


def write(
    index: DocumentIndex,
    blobs: BlobStore,
    collection: Collection,
    run_id: str,
    artifact_key: str,
    groups: list[dict[str, Any]],
    labels: dict[str, str],
    feature_uris: list[str],
    keep_alive: Callable[[], None],
    only: set[str] | None = None,
    dimensions: dict[str, int] | None = None,
) -> int:
    """One centroid document per group and one member document per clustered document (`only`:
    just those of these groups, as after a label edit: the ids are the same, so they are replaced).

    A whole run's documents are appended, after removing any this run wrote before (a job taken
    over after a lost lease writes them again): the ids are new, so no merge is needed, and a merge
    costs a look-up that grows with the table."""
    cid = collection.collection_id
    if only is None:
        drop(index, collection, run_id)
    put = index.upsert if only is not None else index.append
    centroids = [
        _document(
            collection,
            _id(run_id, "centroid", g["cluster_id"]),
            {
                "is_centroid": True,
                "cluster_id": g["cluster_id"],
                "cluster_label": labels.get(g["cluster_id"], g["cluster_id"]),
                "keywords": list(g.get("keywords") or []),
                "member_count": int(g.get("num_members", 0)),
                "run_id": run_id,
            },
            _centroid_vectors(collection, feature_uris, list(g.get("centroid") or []), dimensions or {}),
        )
        for g in groups
        if only is None or g["cluster_id"] in only
    ]
    written = put(cid, centroids)
    columns = ["document_id", "collection_id", "cluster_id", "distance_to_centroid"]
    if only is None:  # a whole run: columnar, in large appends
        schema = index.schema_of(cid)
        for batch in read_batches(blobs, artifact_key, columns, MEMBER_BATCH):
            written += index.append_table(cid, _member_table(collection, schema, run_id, batch, labels))
            keep_alive()
        return written
    pending: list[StoredDocument] = []
    for batch in read_batches(blobs, artifact_key, columns):
        rows = batch.to_pydict()
        for doc, col, group, dist in zip(*(rows[c] for c in columns), strict=True):
            if group not in only:
                continue
            pending.append(
                _document(
                    collection, _id(run_id, "member", col, doc), _member(run_id, group, labels, doc, col, dist), {}
                )
            )
            if len(pending) >= BATCH:
                written += put(cid, pending)
                pending = []
                keep_alive()
    if pending:
        written += put(cid, pending)
    return written


def _label(group: str, labels: dict[str, str]) -> str:
    return labels.get(group, "Noise" if group == NOISE else group)


def _member(run_id: str, group: str, labels: dict[str, str], doc: str, col: str, dist: Any) -> dict[str, Any]:
    return {
        "is_centroid": False,
        "cluster_id": group,
        "cluster_label": _label(group, labels),
        "source_document_id": doc,
        "source_collection_id": col,
        "distance_to_centroid": dist,
        "run_id": run_id,
    }


def _quoted(values: pa.Array) -> pa.Array:
    """Strings as JSON string literals, computed over the whole column (control characters, rare
    in ids, take the per-value route)."""
    if pc.any(pc.match_substring_regex(values, r"[\x00-\x1f]")).as_py():
        return pa.array([json.dumps(v, ensure_ascii=False) for v in values.to_pylist()], pa.string())
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', escaped, '"', "")


def _member_table(
    collection: Collection, schema: pa.Schema, run_id: str, batch: pa.RecordBatch, labels: dict[str, str]
) -> pa.Table:
    """One member document per row of the run's Parquet, built column by column: the same payload,
    search text and `_internal` block `_document` gives, without a Python object per document."""
    n = batch.num_rows
    docs, cols = batch.column("document_id"), batch.column("collection_id")
    groups = batch.column("cluster_id")
    names = pc.unique(groups).to_pylist()
    at = pc.index_in(groups, pa.array(names, pa.string()))
    label = pa.array([_label(g, labels) for g in names], pa.string()).take(at)
    distance = pc.fill_null(pc.cast(batch.column("distance_to_centroid"), pa.string()), "null")
    payload = pc.binary_join_element_wise(
        '{"is_centroid": false, "cluster_id": ',
        _quoted(groups),
        ', "cluster_label": ',
        _quoted(label),
        ', "source_document_id": ',
        _quoted(docs),
        ', "source_collection_id": ',
        _quoted(cols),
        ', "distance_to_centroid": ',
        distance,
        f', "run_id": {json.dumps(run_id)}}}',
        "",
    )
    text = pc.binary_join_element_wise(groups, label, docs, cols, run_id, "\n")
    ids = pa.array(
        [_id(run_id, "member", c, d) for c, d in zip(cols.to_pylist(), docs.to_pylist(), strict=True)], pa.string()
    )
    now = timestamp()
    internal = json.dumps(_internal(collection), ensure_ascii=False)
    values: dict[str, pa.Array] = {
        "document_id": ids,
        "collection_id": pa.array([collection.collection_id] * n, pa.string()),
        "source_type": pa.array(["cluster"] * n, pa.string()),  # the lineage column `_document` fills
        "created_at": pa.array([now] * n, pa.string()),
        "updated_at": pa.array([now] * n, pa.string()),
        "payload": payload,
        "internal": pa.array([internal] * n, pa.string()),
        SEARCH_TEXT_COLUMN: text,
    }
    arrays = []
    for field in schema:
        value = values.get(field.name)
        if value is None:
            arrays.append(pa.nulls(n, field.type))
        elif isinstance(field.type, pa.ExtensionType):
            arrays.append(pa.ExtensionArray.from_storage(field.type, value))
        else:
            arrays.append(value)
    return pa.Table.from_arrays(arrays, schema=schema)


def _where(collection: Collection, run_id: str, operator: str) -> str:
    where = where_of(collection, {"AND": [{"field": "run_id", "operator": operator, "value": run_id}]})
    assert where is not None
    return where


def keep_only(index: DocumentIndex, collection: Collection, run_id: str) -> int:
    """Remove every document another run wrote."""
    return index.delete(collection.collection_id, _where(collection, run_id, "ne"))


def drop(index: DocumentIndex, collection: Collection, run_id: str) -> int:
    """Remove what this run wrote."""
    return index.delete(collection.collection_id, _where(collection, run_id, "eq"))
