"""Input rows of a collection run: bucket objects or upstream documents, in one shape.

A `SourceRecord` is what the runner (and the batch engine's manifests) hand to
`run_collection`. Loaders build them from the metadata store or the index;
`input_value` turns one mapped input into what the extractor expects: text
as `str`, files as local paths, anything else as the stored value.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.extractors.base import ErrorCategory, ExtractionError, over_limit
from strataflow.extractors.limits import ExtractionLimits
from strataflow.index.store import DocumentIndex
from strataflow.services.buckets.schema import FILE_TYPES
from strataflow.services.collections.schema import ResolvedInput
from strataflow.store.tables import BucketObject

# Inputs an extractor receives as a local file. Text arrives as a string even when stored as a blob.
_FILE_TYPE_NAMES = frozenset(t.value for t in FILE_TYPES) - {"text"}


@dataclass(frozen=True)
class SourceRecord:
    """One row a collection extracts from."""

    source_type: str  # "bucket" (a bucket object) | "collection" (an upstream document)
    source_id: str  # object_id | document_id
    container_id: str  # bucket_id | the upstream collection_id
    fields: dict[str, Any]  # object: metadata + blob values; document: its user fields
    blobs: list[dict[str, Any]] = field(default_factory=list)  # object blobs | document blobs (with keys)
    vectors: dict[str, list[float]] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)  # an upstream document's lineage
    namespace_id: str = ""
    source_blobs: list[dict[str, Any]] = field(default_factory=list)  # the root object's blobs, for _internal


def source_blob_refs(blobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """References to an object's stored blobs, as documents keep them in `_internal.source_blobs`."""
    return [
        {
            "blob_id": b.get("blob_id"),
            "blob_property": b.get("property"),
            "blob_type": b.get("type"),
            "url": (b.get("properties") or {}).get("url"),
        }
        for b in blobs
        if (b.get("properties") or {}).get("key")
    ]


def object_record(row: BucketObject) -> SourceRecord:
    fields = dict(row.metadata_ or {})
    for blob in row.blobs:
        props = blob.get("properties", {})
        fields[blob["property"]] = props["url"] if props.get("key") else props.get("value")
    return SourceRecord(
        "bucket",
        row.object_id,
        row.bucket_id,
        fields,
        list(row.blobs),
        {},
        {},
        row.namespace_id,
        source_blob_refs(row.blobs),
    )


def load_object_records(session: Session, namespace_id: str, object_ids: list[str]) -> list[SourceRecord]:
    """Objects by id, in the order asked; ids that do not exist are left out."""
    rows = session.scalars(
        select(BucketObject).where(BucketObject.namespace_id == namespace_id, BucketObject.object_id.in_(object_ids))
    )
    by_id = {row.object_id: row for row in rows}
    return [object_record(by_id[i]) for i in object_ids if i in by_id]


def load_document_records(
    index: DocumentIndex, collection_id: str, document_ids: list[str] | None = None, where: str | None = None
) -> list[SourceRecord]:
    """Upstream documents (with vectors) as records; all of the collection's when no ids are given."""
    if document_ids is not None:
        docs = index.get_many(collection_id, document_ids, with_vectors=True)
    else:
        docs = index.query(collection_id, where, order=[("created_at", True), ("document_id", True)], with_vectors=True)
    return [
        SourceRecord(
            "collection",
            d.document_id,
            collection_id,
            dict(d.payload),
            list(d.internal.get("document_blobs") or []),
            {k: v for k, v in d.vectors.items() if v is not None},
            d.lineage,
            str(d.internal.get("namespace_id") or ""),
            list(d.internal.get("source_blobs") or []),
        )
        for d in docs
    ]


def field_value(record: SourceRecord, path: str) -> Any:
    """The value at a dot path; bucket objects also answer `metadata.<key>`."""
    parts = path.split(".")
    if record.source_type == "bucket" and parts[0] == "metadata" and "metadata" not in record.fields:
        parts = parts[1:]
    value: Any = record.fields
    for part in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _blob_named(record: SourceRecord, name: str) -> dict[str, Any] | None:
    for blob in record.blobs:
        if blob.get("property") == name or blob.get("field") == name:
            return blob
    return None


def _blob_key(blob: dict[str, Any]) -> str | None:
    return blob.get("key") or (blob.get("properties") or {}).get("key")


def _read_at_most(stream: Any, limit: int) -> bytes:
    parts: list[bytes] = []
    left = limit
    while left > 0:
        part = stream.read(min(left, 1 << 20))
        if not part:
            break
        parts.append(bytes(part))
        left -= len(part)
    return b"".join(parts)


def _read_text(blobs: BlobStore, key: str, name: str, max_bytes: int) -> str:
    try:
        with blobs.open(key) as stream:
            data = _read_at_most(stream, max_bytes + 1)  # never more than the cap in memory, whatever the blob holds
    except FileNotFoundError:
        raise ExtractionError(ErrorCategory.DEPENDENCY, f"blob of '{name}' is missing from storage") from None
    if len(data) > max_bytes:
        raise over_limit(f"text blob '{name}'", max_bytes, "text_max_bytes", "bytes")
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise ExtractionError(ErrorCategory.VALIDATION, f"'{name}' is not UTF-8 text") from None


def _download(blobs: BlobStore, key: str, name: str, work_dir: Path, record: SourceRecord) -> Path:
    target = work_dir / record.source_id / name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with blobs.open(key) as stream, target.open("wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
    except FileNotFoundError:
        raise ExtractionError(ErrorCategory.DEPENDENCY, f"blob of '{name}' is missing from storage") from None
    return target


def input_value(
    record: SourceRecord, mapping: ResolvedInput, blobs: BlobStore, work_dir: Path, limits: ExtractionLimits
) -> Any:
    """What the extractor receives for one input: text as str, files as local paths."""
    if mapping.source_type == "literal":
        return mapping.override
    assert mapping.path is not None
    if mapping.source_type == "vector":
        return record.vectors.get(mapping.path)
    blob = _blob_named(record, mapping.path)
    key = _blob_key(blob) if blob is not None else None
    if key is not None:
        if mapping.input_type in ("text", "string"):
            return _read_text(blobs, key, mapping.path, limits.text_max_bytes)
        if mapping.input_type in _FILE_TYPE_NAMES:
            return _download(blobs, key, mapping.path, work_dir, record)
    value = field_value(record, mapping.path)
    if mapping.input_type in _FILE_TYPE_NAMES and value is not None:
        raise ExtractionError(ErrorCategory.VALIDATION, f"'{mapping.path}' holds no stored {mapping.input_type} file")
    return value
