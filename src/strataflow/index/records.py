"""The row layout of a collection's LanceDB table, and conversion to and from it.

Columns: the document id; lineage fields as plain string columns (fast filters
on `root_object_id` and friends); ISO-8601 UTC timestamps as fixed-width
strings (they sort and compare as text); `payload` (the user fields) and
`internal` (the `_internal` block) as Lance JSON columns; and one fixed-size
float32 vector column per vector index, null where a document has no vector.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from strataflow.clock import utcnow
from strataflow.errors import BadRequestError

LINEAGE_COLUMNS = (
    "root_object_id",
    "root_bucket_id",
    "source_type",
    "source_object_id",
    "source_document_id",
    "source_collection_id",
)
STRING_COLUMNS = ("document_id", "collection_id", *LINEAGE_COLUMNS, "lineage_path", "created_at", "updated_at")
JSON_COLUMNS = ("payload", "internal")
# Every string in the payload, joined: the column the full-text index covers (LanceDB's native
# inverted index needs a plain string column; the payload is JSON).
SEARCH_TEXT_COLUMN = "search_text"


def timestamp(moment: datetime | None = None) -> str:
    """Fixed-width UTC timestamp: text order equals time order."""
    return (moment or utcnow()).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


@dataclass
class StoredDocument:
    """A document as the index holds it."""

    document_id: str
    collection_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    internal: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, list[float] | None] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""

    @property
    def lineage(self) -> dict[str, Any]:
        return dict(self.internal.get("lineage") or {})


def table_schema(vector_columns: dict[str, int]) -> pa.Schema:
    fields = [pa.field(name, pa.string(), nullable=name != "document_id") for name in STRING_COLUMNS]
    fields += [pa.field(name, pa.json_(pa.utf8())) for name in JSON_COLUMNS]
    fields.append(pa.field(SEARCH_TEXT_COLUMN, pa.string()))
    fields += [pa.field(name, pa.list_(pa.float32(), dims)) for name, dims in sorted(vector_columns.items())]
    return pa.schema(fields)


def vector_columns_of(schema: pa.Schema) -> dict[str, int]:
    return {f.name: f.type.list_size for f in schema if pa.types.is_fixed_size_list(f.type)}


def _vector(value: list[float] | None, name: str, dims: int) -> list[float] | None:
    if value is None:
        return None
    if len(value) != dims:
        raise BadRequestError(
            f"Vector '{name}' has {len(value)} dimensions; its index has {dims}",
            {"vector": name, "dimensions": len(value), "expected": dims},
        )
    values = [float(x) for x in value]
    if not all(math.isfinite(x) for x in values):
        raise BadRequestError(f"Vector '{name}' holds a value that is not a finite number", {"vector": name})
    return values


def search_text(value: Any) -> str:
    """The strings inside a payload value, in order, one per line."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        parts = [search_text(v) for v in value.values()]
    elif isinstance(value, list):
        parts = [search_text(v) for v in value]
    else:
        return ""
    return "\n".join(p for p in parts if p)


def to_arrow(documents: list[StoredDocument], schema: pa.Schema) -> pa.Table:
    vectors = vector_columns_of(schema)
    rows = []
    for doc in documents:
        unknown = sorted(set(doc.vectors) - set(vectors))
        if unknown:
            raise BadRequestError(
                f"Unknown vector field(s): {', '.join(unknown)}",
                {"unknown": unknown, "vector_indexes": sorted(vectors)},
            )
        lineage = doc.lineage
        row: dict[str, Any] = {
            "document_id": doc.document_id,
            "collection_id": doc.collection_id,
            **{name: lineage.get(name) for name in LINEAGE_COLUMNS},
            "lineage_path": lineage.get("path"),
            "created_at": doc.created_at,
            "updated_at": doc.updated_at,
            "payload": json.dumps(doc.payload, ensure_ascii=False, default=str),
            "internal": json.dumps(doc.internal, ensure_ascii=False, default=str),
            SEARCH_TEXT_COLUMN: search_text(doc.payload),
        }
        for name, dims in vectors.items():
            row[name] = _vector(doc.vectors.get(name), name, dims)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


def from_row(row: dict[str, Any], vector_names: list[str]) -> StoredDocument:
    return StoredDocument(
        document_id=row["document_id"],
        collection_id=row["collection_id"],
        payload=json.loads(row["payload"]) if row.get("payload") else {},
        internal=json.loads(row["internal"]) if row.get("internal") else {},
        vectors={name: row.get(name) for name in vector_names if name in row},
        created_at=row.get("created_at") or "",
        updated_at=row.get("updated_at") or "",
    )
