"""Uploads as object blobs: `blobs[i].upload_id` in an object.

A completed upload's bytes become an object's blob where they lie; nothing
is copied. One upload backs at most one object, so deleting that object can
never pull bytes from under another.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.errors import BadRequestError, ConflictError
from strataflow.ids import new_id
from strataflow.schemas.objects import CreateBlobRequest
from strataflow.services.buckets.mime import content_fits
from strataflow.services.buckets.schema import FieldType, parse_type
from strataflow.statuses import Status
from strataflow.store.tables import Bucket, Upload


def upload_blob_record(
    session: Session, store: BlobStore, bucket: Bucket, blob: CreateBlobRequest, object_id: str
) -> dict[str, Any]:
    """The blob record for an upload-backed blob; the upload is bound to `object_id`.

    The upload row is locked, so two objects racing for one upload cannot both win.
    """
    upload_id = blob.upload_id
    row = session.scalar(
        select(Upload).where(Upload.upload_id == upload_id, Upload.bucket_id == bucket.bucket_id).with_for_update()
    )
    if row is None:
        raise BadRequestError(f"Upload '{upload_id}' not found in this bucket", {"upload_id": upload_id})
    if row.status != Status.COMPLETED:
        raise BadRequestError(
            f"Upload '{upload_id}' is {row.status}; only a confirmed upload can back a blob",
            {"upload_id": upload_id, "status": row.status},
        )
    if row.object_id not in (None, object_id):
        raise ConflictError(
            f"Upload '{upload_id}' already backs object '{row.object_id}'",
            {"upload_id": upload_id, "object_id": row.object_id},
        )
    kind = _check_fit(bucket, blob, row)
    row.object_id = object_id
    return {
        "blob_id": new_id("blob"),
        "property": blob.property,
        "key_prefix": blob.key_prefix,
        "type": kind.value,
        "properties": {
            **(blob.metadata or {}),
            "url": store.uri(row.s3_key),
            "key": row.s3_key,
            "upload_id": row.upload_id,
        },
        "details": {
            "filename": blob.filename or row.filename,
            "size_bytes": row.stored_size_bytes,
            "mime_type": row.content_type,
            "hash": row.content_sha256,
        },
    }


def _check_fit(bucket: Bucket, blob: CreateBlobRequest, row: Upload) -> FieldType:
    prop = blob.property
    field_def = bucket.bucket_schema.get("properties", {}).get(prop)
    if field_def is None:
        raise BadRequestError(f"Blob property '{prop}' is not in the bucket schema", {"field": f"blobs.{prop}"})
    kind = parse_type(blob.type, f"blobs.{prop}.type")
    expected = FieldType(field_def["type"])
    if kind is not expected:
        raise BadRequestError(
            f"Blob '{prop}' has type {kind.value} but the schema says {expected.value}",
            {"field": f"blobs.{prop}.type", "expected_type": expected.value},
        )
    if not content_fits(kind, row.content_type):
        raise BadRequestError(
            f"Upload '{row.upload_id}' holds {row.content_type}, not a {kind.value} file",
            {"field": f"blobs.{prop}.upload_id", "content_type": row.content_type},
        )
    return kind
