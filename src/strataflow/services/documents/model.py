"""How documents are named, addressed and shown: ids, lineage, field resolution, the wire view."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from strataflow.blobs import BlobStore
from strataflow.errors import BadRequestError
from strataflow.index.filters import Target
from strataflow.index.records import LINEAGE_COLUMNS, StoredDocument
from strataflow.services.collections.schema import SYSTEM_FIELDS
from strataflow.services.documents.vector_choice import NO_VECTORS, VectorChoice, vector_fields
from strataflow.store.tables import Collection

PRESIGNED_GET_SECONDS = 3600
_COLUMNS = {"document_id", "collection_id", "created_at", "updated_at", "lineage_path", *LINEAGE_COLUMNS}
_ALIASES = {
    "_internal.document_id": "document_id",
    "_internal.collection_id": "collection_id",
    "_internal.created_at": "created_at",
    "_internal.updated_at": "updated_at",
    "_internal.lineage.path": "lineage_path",
    **{f"_internal.lineage.{name}": name for name in LINEAGE_COLUMNS},
}
# Keys a client may send back unchanged in a document body; they are not user fields.
ECHOED_KEYS = frozenset({"document_id", "collection_id", "_internal", "document_blobs"})


def derived_document_id(collection_id: str, source_type: str, source_id: str, position: dict[str, Any]) -> str:
    """Same inputs, same id: re-running a collection over the same source overwrites its documents."""
    key = json.dumps([collection_id, source_type, source_id, position], sort_keys=True, default=str)
    return "doc_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def random_document_id() -> str:
    return "doc_" + secrets.token_hex(12)


def vector_names(collection: Collection) -> set[str]:
    return {d["index"]["name"] for d in collection.vector_indexes}


def resolve_field(name: str, collection: Collection) -> Target:
    """A filter or sort field: a column, a path in `_internal`, or a path in the user payload."""
    if name in _COLUMNS:
        return Target(name)
    if name in _ALIASES:
        return Target(_ALIASES[name])
    parts = tuple(name.split("."))
    if any(not part for part in parts):
        raise BadRequestError(f"Invalid field path '{name}'", {"field": name})
    if parts[0] == "_internal":
        if len(parts) < 2:
            raise BadRequestError("Name a field inside _internal, e.g. _internal.lineage.root_object_id")
        return Target("internal", parts[1:])
    if parts[0] in vector_names(collection):
        raise BadRequestError(f"Cannot filter or sort on vector field '{name}'", {"field": name})
    return Target("payload", parts)


def check_user_fields(fields: dict[str, Any], collection: Collection) -> dict[str, Any]:
    """User fields of a write, refusing system names. Vector fields are split out by the caller."""
    bad = sorted(k for k in fields if k in SYSTEM_FIELDS or k.startswith("_"))
    if bad:
        raise BadRequestError(f"Cannot write system field(s): {', '.join(bad)}", {"fields": bad})
    return fields


def split_vectors(body: dict[str, Any], collection: Collection) -> tuple[dict[str, Any], dict[str, Any]]:
    """A document body's user fields and its vector fields (by storage name)."""
    names = vector_names(collection)
    fields = {k: v for k, v in body.items() if k not in names and k not in ECHOED_KEYS}
    vectors = {k: v for k, v in body.items() if k in names}
    for name, value in vectors.items():
        if value is not None and (not isinstance(value, list) or not all(isinstance(x, (int, float)) for x in value)):
            raise BadRequestError(f"Vector '{name}' must be a list of numbers", {"field": name})
    return check_user_fields(fields, collection), vectors


def public_blob(entry: dict[str, Any], blobs: BlobStore | None) -> dict[str, Any]:
    ref = {
        k: entry.get(k)
        for k in (
            "field",
            "url",
            "role",
            "type",
            "filename",
            "size_bytes",
            "content_type",
            "checksum",
            "created_at",
            "source_blob_id",
        )
    }
    if blobs is not None and entry.get("key"):
        ref["presigned_url"] = blobs.presigned_get_url(entry["key"], PRESIGNED_GET_SECONDS)
    return {k: v for k, v in ref.items() if v is not None}


def _project(view: dict[str, Any], select: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"document_id": view["document_id"], "collection_id": view["collection_id"]}
    for path in select:
        parts = path.split(".")
        value: Any = view
        for part in parts:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return out


def document_view(
    doc: StoredDocument,
    *,
    vectors: VectorChoice = NO_VECTORS,
    select: list[str] | None = None,
    blobs: BlobStore | None = None,
) -> dict[str, Any]:
    """The DocumentResponse shape: user fields at the root, system data under `_internal`.

    Vectors asked for are shown whether or not `select` names them: a client that asked for them
    twice over (select and return_vectors) should not have to name them twice."""
    internal = {
        **doc.internal,
        "document_id": doc.document_id,
        "collection_id": doc.collection_id,
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
    }
    view: dict[str, Any] = {
        **doc.payload,
        "document_id": doc.document_id,
        "collection_id": doc.collection_id,
        "document_blobs": [public_blob(e, blobs) for e in internal.get("document_blobs") or []],
        "_internal": internal,
    }
    shown = _project(view, select) if select else view
    shown.update(vector_fields(doc.vectors, vectors))
    return shown
