"""How an object is shown on the wire (its own routes, and a document's `expand=root_object`)."""

from __future__ import annotations

from typing import Any

from strataflow.blobs import BlobStore
from strataflow.clock import isoformat
from strataflow.store.tables import BucketObject

PRESIGNED_GET_SECONDS = 3600


def object_view(row: BucketObject, blobs: BlobStore | None = None) -> dict[str, Any]:
    """Wire shape; with `blobs`, each stored blob gets a fresh presigned download URL."""
    blob_list = []
    for blob in row.blobs:
        blob = {**blob, "properties": dict(blob.get("properties", {}))}
        if blobs is not None and blob["properties"].get("key"):
            blob["properties"]["presigned_url"] = blobs.presigned_get_url(
                blob["properties"]["key"], PRESIGNED_GET_SECONDS
            )
        blob_list.append(blob)
    return {
        "object_id": row.object_id,
        "bucket_id": row.bucket_id,
        "key_prefix": row.key_prefix,
        "blobs": blob_list,
        "source_details": row.source_details,
        "status": row.status,
        "error": row.error,
        "metadata": row.metadata_,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }
