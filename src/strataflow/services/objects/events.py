"""The events an object's changes record (in the change's own transaction: services/events/outbox.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from strataflow.clock import isoformat
from strataflow.services.events.outbox import emit
from strataflow.store.tables import Bucket, BucketObject


def object_payload(bucket: Bucket, row: BucketObject) -> dict[str, Any]:
    """What a receiver needs to act on the object: where it is, its metadata, its blobs (inline values left out)."""
    return {
        "object_id": row.object_id,
        "bucket_id": bucket.bucket_id,
        "bucket_name": bucket.bucket_name,
        "namespace_id": row.namespace_id,
        "key_prefix": row.key_prefix,
        "metadata": row.metadata_,
        "blobs": [
            {"blob_id": b.get("blob_id"), "property": b.get("property"), "type": b.get("type"), **b.get("details", {})}
            for b in row.blobs or []
        ],
        "content_hash": row.content_hash,
        "size_bytes": row.size_bytes,
        "updated_at": isoformat(row.updated_at),
    }


def object_changed(session: Session, event_type: str, bucket: Bucket, row: BucketObject) -> None:
    emit(
        session,
        event_type,
        namespace_id=row.namespace_id,
        resource_id=row.object_id,
        payload=object_payload(bucket, row),
    )
