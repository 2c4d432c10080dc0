"""Bucket objects: create (single and batch), read, list, update, delete, aggregate."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.clock import utcnow
from strataflow.errors import AlreadyExistsError, BadRequestError, StrataflowError, not_found
from strataflow.ids import new_id
from strataflow.schemas.objects import (
    CreateBlobRequest,
    CreateObjectRequest,
    ListObjectsRequest,
    PatchObjectRequest,
    UpdateObjectRequest,
)
from strataflow.services.buckets.schema import check_metadata, check_required
from strataflow.services.objects.sources import SourceLimits, StoredBlobs, store_blob
from strataflow.services.objects.upload_blobs import upload_blob_record
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.filters import FieldMap, compile_filters, sort_expression, text_search
from strataflow.store.pagination import Page, PageRequest, paginate
from strataflow.store.tables import Bucket, BucketObject

OBJECT_FIELDS = FieldMap(
    columns={
        "object_id": BucketObject.object_id,
        "bucket_id": BucketObject.bucket_id,
        "key_prefix": BucketObject.key_prefix,
        "status": BucketObject.status,
        "size_bytes": BucketObject.size_bytes,
        "created_at": BucketObject.created_at,
        "updated_at": BucketObject.updated_at,
    },
    json_columns={"metadata": BucketObject.metadata_},
)


@dataclass(frozen=True)
class ObjectWriter:
    """What writing objects needs besides the session: the blob store and its limits."""

    blobs: BlobStore
    limits: SourceLimits

    def store(self, bucket: Bucket, object_id: str, blobs: list[CreateBlobRequest],
              session: Session | None = None) -> StoredBlobs:
        """Blob records for an object. Upload-backed blobs (`upload_id`) need the `session`:
        their upload is bound to the object in it, and their bytes stay where they are."""
        stored = StoredBlobs()
        root = f"{bucket.namespace_id}/{bucket.bucket_id}/{object_id}"
        try:
            for blob in blobs:
                if blob.upload_id is not None:
                    if session is None:
                        raise BadRequestError("Upload-backed blobs are not accepted here",
                                              {"upload_id": blob.upload_id})
                    stored.records.append(upload_blob_record(session, self.blobs, bucket, blob, object_id))
                    continue
                store_blob(self.blobs, bucket.bucket_schema, root, blob, self.limits, stored)
        except BaseException:
            stored.undo(self.blobs)
            raise
        return stored


def content_hash(blobs: list[dict[str, Any]]) -> str:
    """Identity of an object's content: its blobs' properties and hashes (or inline values)."""
    parts = sorted(
        (b["property"], b["details"].get("hash") or json.dumps(b["properties"].get("value"), sort_keys=True))
        for b in blobs
    )
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def unique_key_value(bucket: Bucket, metadata: dict[str, Any]) -> str | None:
    if not bucket.unique_key:
        return None
    values = []
    for name in bucket.unique_key["fields"]:
        value = metadata.get(name)
        if value is None or value == "":
            raise BadRequestError(f"Unique key field '{name}' needs a value", {"field": name})
        values.append(value)
    return json.dumps(values, sort_keys=True)


def _validate(bucket: Bucket, blobs: list[CreateBlobRequest], metadata: dict[str, Any]) -> None:
    props = [b.property for b in blobs]
    duplicates = sorted({p for p in props if props.count(p) > 1})
    if duplicates:
        raise BadRequestError(f"Blob properties repeat: {', '.join(duplicates)}", {"properties": duplicates})
    check_metadata(bucket.bucket_schema, metadata)
    check_required(bucket.bucket_schema, set(props) | set(metadata))


def create_object(
    session: Session,
    writer: ObjectWriter,
    bucket: Bucket,
    request: CreateObjectRequest,
    policy: str | None = None,
) -> BucketObject:
    """Validate, store blob bytes, then insert the row. On any failure nothing remains."""
    metadata = dict(request.metadata or {})
    _validate(bucket, request.blobs, metadata)
    unique_value = unique_key_value(bucket, metadata)
    policy = policy or (bucket.unique_key or {}).get("default_policy") or "insert"
    if policy not in ("insert", "update", "upsert"):
        raise BadRequestError("policy must be insert, update or upsert", {"policy": policy})
    existing = None
    if unique_value is not None:
        existing = session.scalar(
            select(BucketObject).where(
                BucketObject.bucket_id == bucket.bucket_id, BucketObject.unique_key_value == unique_value
            )
        )
        if existing is not None and policy == "insert":
            raise AlreadyExistsError(
                "An object with this unique key already exists",
                {"object_id": existing.object_id, "unique_key": bucket.unique_key["fields"]},
            )
        if existing is None and policy == "update":
            raise not_found("Object with unique key", unique_value)
    object_id = existing.object_id if existing is not None else new_id("object")
    stored = writer.store(bucket, object_id, request.blobs, session)
    try:
        digest = content_hash(stored.records)
        if request.skip_duplicates and existing is None:
            duplicate = session.scalar(
                select(BucketObject).where(
                    BucketObject.bucket_id == bucket.bucket_id, BucketObject.content_hash == digest
                )
            )
            if duplicate is not None:
                session.rollback()  # releases any upload the blobs had bound to the new object
                stored.undo(writer.blobs)
                return duplicate
        if existing is not None:
            old_keys = _blob_keys(existing.blobs)
            _fill(existing, request.key_prefix, stored, metadata, digest)
            session.commit()
            _delete_keys(writer.blobs, old_keys - _blob_keys(existing.blobs))
            return existing
        row = BucketObject(
            object_id=object_id,
            bucket_id=bucket.bucket_id,
            namespace_id=bucket.namespace_id,
            source_details=[{"type": "bucket", "source_id": bucket.bucket_id}],
            unique_key_value=unique_value,
        )
        _fill(row, request.key_prefix, stored, metadata, digest)
        session.add(row)
        bucket.last_upload_at = row.created_at = row.updated_at = _now()
        session.commit()
        return row
    except BaseException:
        session.rollback()
        stored.undo(writer.blobs)
        raise


def _now() -> Any:
    return utcnow()


def _fill(row: BucketObject, key_prefix: str | None, stored: StoredBlobs, metadata: dict[str, Any],
          digest: str) -> None:
    row.key_prefix = key_prefix
    row.blobs = stored.records
    row.metadata_ = metadata
    row.size_bytes = stored.size_bytes
    row.content_hash = digest


def create_objects_batch(
    session: Session, writer: ObjectWriter, bucket: Bucket, items: list[dict[str, Any]]
) -> tuple[list[BucketObject], list[dict[str, Any]]]:
    """Each item stands alone: one bad object fails alone and changes nothing."""
    succeeded: list[BucketObject] = []
    failed: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            request = CreateObjectRequest.model_validate(item)
            succeeded.append(create_object(session, writer, bucket, request))
        except PydanticValidationError as exc:
            failed.append({"object_index": index, "error": _first_error(exc), "error_type": "ValidationError"})
        except StrataflowError as exc:
            failed.append({"object_index": index, "error": exc.message, "error_type": exc.type})
    return succeeded, failed


def _first_error(exc: PydanticValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))


def get_object(session: Session, scope: NamespaceScope, bucket: Bucket, object_id: str) -> BucketObject:
    row = session.scalar(
        select(BucketObject).where(
            BucketObject.object_id == object_id,
            BucketObject.bucket_id == bucket.bucket_id,
            BucketObject.namespace_id == scope.namespace_id,
        )
    )
    if row is None:
        raise not_found("Object", object_id)
    return row


def update_object(
    session: Session, writer: ObjectWriter, bucket: Bucket, row: BucketObject, request: UpdateObjectRequest
) -> BucketObject:
    """PUT: blobs and metadata given here replace the old ones."""
    metadata = request.metadata if request.metadata is not None else dict(row.metadata_)
    blobs = request.blobs
    if blobs is None:
        check_metadata(bucket.bucket_schema, metadata)
        check_required(bucket.bucket_schema, {b["property"] for b in row.blobs} | set(metadata))
        row.metadata_ = metadata
        row.key_prefix = request.key_prefix
        row.unique_key_value = unique_key_value(bucket, metadata)
        session.commit()
        return row
    _validate(bucket, blobs, metadata)
    stored = writer.store(bucket, row.object_id, blobs, session)
    old_keys = _blob_keys(row.blobs)
    try:
        row.unique_key_value = unique_key_value(bucket, metadata)
        _fill(row, request.key_prefix, stored, metadata, content_hash(stored.records))
        session.commit()
    except BaseException:
        session.rollback()
        stored.undo(writer.blobs)
        raise
    _delete_keys(writer.blobs, old_keys - _blob_keys(row.blobs))
    return row


def patch_object(session: Session, bucket: Bucket, row: BucketObject, request: PatchObjectRequest) -> BucketObject:
    """PATCH: metadata keys are merged; key_prefix changes when sent."""
    changes = request.model_dump(exclude_unset=True)
    if "key_prefix" in changes:
        row.key_prefix = changes["key_prefix"]
    if changes.get("metadata") is not None:
        merged = {**row.metadata_, **changes["metadata"]}
        check_metadata(bucket.bucket_schema, merged)
        row.unique_key_value = unique_key_value(bucket, merged)
        row.metadata_ = merged
    session.commit()
    return row


def delete_object(session: Session, blobs: BlobStore, row: BucketObject) -> None:
    keys = _blob_keys(row.blobs)
    session.delete(row)
    session.commit()
    _delete_keys(blobs, keys)  # after the commit: a failed delete never loses the row's bytes


def _blob_keys(blobs: list[dict[str, Any]]) -> set[str]:
    return {b["properties"]["key"] for b in blobs if b.get("properties", {}).get("key")}


def _delete_keys(store: BlobStore, keys: set[str]) -> None:
    for key in keys:
        store.delete(key)


def list_objects(
    session: Session, scope: NamespaceScope, bucket: Bucket, request: ListObjectsRequest, page: PageRequest
) -> Page:
    query = select(BucketObject).where(
        BucketObject.bucket_id == bucket.bucket_id, BucketObject.namespace_id == scope.namespace_id
    )
    clause = compile_filters(request.filters, OBJECT_FIELDS)
    if clause is not None:
        query = query.where(clause)
    if request.search:
        query = query.where(text_search(request.search, BucketObject.object_id, BucketObject.key_prefix,
                                        cast(BucketObject.metadata_, String), cast(BucketObject.blobs, String)))
    if request.sort is not None:
        query = query.order_by(sort_expression(request.sort.field, request.sort.direction, OBJECT_FIELDS))
    query = query.order_by(BucketObject.created_at.desc(), BucketObject.object_id)
    return paginate(session, query, page)
