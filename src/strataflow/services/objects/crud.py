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
from strataflow.index.store import DocumentIndex
from strataflow.schemas.objects import (
    CreateBlobRequest,
    CreateObjectRequest,
    ListObjectsRequest,
    PatchObjectRequest,
    UpdateObjectRequest,
)
from strataflow.services.buckets.documents import namespace_collection_ids, remove_documents_of_objects
from strataflow.services.buckets.schema import check_metadata, check_required
from strataflow.services.events.outbox import emit
from strataflow.services.objects.events import object_changed
from strataflow.services.objects.sources import BlobSources, StoredBlobs, store_blob
from strataflow.services.objects.upload_blobs import upload_blob_record
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.filters import FieldMap, compile_filters, sort_expression, text_search
from strataflow.store.pagination import Page, PageRequest, paginate
from strataflow.store.tables import Bucket, BucketObject
from strataflow.transitions import create

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
    """What writing objects needs besides the database: the blob store and where blob bytes may come from."""

    blobs: BlobStore
    sources: BlobSources

    def store_inline(self, bucket: Bucket, object_id: str, blobs: list[CreateBlobRequest]) -> StoredBlobs:
        """Fetch and write the bytes of every blob not backed by an upload. Network and blob-store
        I/O only: call it with no database session open, so no transaction waits on a slow URL."""
        stored = StoredBlobs()
        root = f"{bucket.namespace_id}/{bucket.bucket_id}/{object_id}"
        try:
            for blob in blobs:
                if blob.upload_id is None:
                    store_blob(self.blobs, bucket.bucket_schema, root, blob, self.sources, stored)
        except BaseException:
            stored.undo(self.blobs)
            raise
        return stored

    def bind_uploads(
        self, session: Session, bucket: Bucket, object_id: str, blobs: list[CreateBlobRequest], stored: StoredBlobs
    ) -> None:
        """Add the upload-backed blobs, in request order; their uploads are bound to the object in `session`."""
        inline = iter(stored.records)
        records = []
        for blob in blobs:
            if blob.upload_id is None:
                records.append(next(inline))
            else:
                records.append(upload_blob_record(session, self.blobs, bucket, blob, object_id))
        stored.records = records


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


@dataclass(frozen=True)
class _Plan:
    """A create request checked against the bucket, before any I/O."""

    metadata: dict[str, Any]
    unique_value: str | None
    policy: str


def _plan(bucket: Bucket, request: CreateObjectRequest, policy: str | None) -> _Plan:
    metadata = dict(request.metadata or {})
    _validate(bucket, request.blobs, metadata)
    unique_value = unique_key_value(bucket, metadata)
    policy = policy or (bucket.unique_key or {}).get("default_policy") or "insert"
    if policy not in ("insert", "update", "upsert"):
        raise BadRequestError("policy must be insert, update or upsert", {"policy": policy})
    return _Plan(metadata, unique_value, policy)


def _existing(session: Session, bucket: Bucket, plan: _Plan) -> BucketObject | None:
    """The object holding the request's unique key, when the policy lets it be replaced."""
    if plan.unique_value is None:
        return None
    existing = session.scalar(
        select(BucketObject).where(
            BucketObject.bucket_id == bucket.bucket_id, BucketObject.unique_key_value == plan.unique_value
        )
    )
    if existing is not None and plan.policy == "insert":
        raise AlreadyExistsError(
            "An object with this unique key already exists",
            {"object_id": existing.object_id, "unique_key": (bucket.unique_key or {}).get("fields")},
        )
    if existing is None and plan.policy == "update":
        raise not_found("Object with unique key", plan.unique_value)
    return existing


def create_object(
    db: Database, writer: ObjectWriter, bucket: Bucket, request: CreateObjectRequest, policy: str | None = None
) -> BucketObject:
    """Validate, fetch and store blob bytes with no session open, then insert the row in one short
    transaction. On any failure nothing remains."""
    plan = _plan(bucket, request, policy)
    with db.read_session() as session:  # fail early (and cheaply) on a unique-key clash
        existing = _existing(session, bucket, plan)
    object_id = existing.object_id if existing is not None else new_id("object")
    stored = writer.store_inline(bucket, object_id, request.blobs)
    try:
        with db.session() as session:
            current = session.get(Bucket, bucket.bucket_id)
            if current is None:
                raise not_found("Bucket", bucket.bucket_id)
            row, kept = write_object(session, writer, current, request, plan, stored, object_id)
    except BaseException:
        stored.undo(writer.blobs)
        raise
    if not kept:
        stored.undo(writer.blobs)
    return row


def create_object_in(
    session: Session, writer: ObjectWriter, bucket: Bucket, request: CreateObjectRequest, policy: str | None = None
) -> BucketObject:
    """Create an object inside the caller's transaction (an upload confirm). Only upload-backed
    blobs are accepted: bytes to fetch or write must never keep a transaction open."""
    if any(blob.upload_id is None for blob in request.blobs):
        raise BadRequestError("Only upload-backed blobs can be added here")
    plan = _plan(bucket, request, policy)
    row, _kept = write_object(session, writer, bucket, request, plan, StoredBlobs(), new_id("object"))
    return row


def write_object(
    session: Session,
    writer: ObjectWriter,
    bucket: Bucket,
    request: CreateObjectRequest,
    plan: _Plan,
    stored: StoredBlobs,
    object_id: str,
) -> tuple[BucketObject, bool]:
    """Insert or update the row for blobs already stored, and commit. Answers the row and whether
    the stored blobs were kept (False: a duplicate object answered instead). Raises after a rollback."""
    try:
        existing = _existing(session, bucket, plan)  # again, under the write lock: the first look may be stale
        if existing is not None:
            object_id = existing.object_id
        writer.bind_uploads(session, bucket, object_id, request.blobs, stored)
        digest = content_hash(stored.records)
        if request.skip_duplicates and existing is None:
            duplicate = session.scalar(
                select(BucketObject).where(
                    BucketObject.bucket_id == bucket.bucket_id, BucketObject.content_hash == digest
                )
            )
            if duplicate is not None:
                session.expunge(duplicate)  # stays readable: the rollback expires what the session holds
                session.rollback()  # releases any upload the blobs had bound to the new object
                return duplicate, False
        if existing is not None:
            old_keys = _blob_keys(existing.blobs)
            _fill(existing, request.key_prefix, stored, plan.metadata, digest)
            existing.updated_at = _now()
            object_changed(session, "object.updated", bucket, existing)
            session.commit()
            _delete_keys(writer.blobs, old_keys - _blob_keys(existing.blobs))
            return existing, True
        row = BucketObject(
            object_id=object_id,
            bucket_id=bucket.bucket_id,
            namespace_id=bucket.namespace_id,
            source_details=[{"type": "bucket", "source_id": bucket.bucket_id}],
            unique_key_value=plan.unique_value,
        )
        _fill(row, request.key_prefix, stored, plan.metadata, digest)
        create(session, row, Status.DRAFT, "created")
        bucket.last_upload_at = row.created_at = row.updated_at = _now()
        object_changed(session, "object.created", bucket, row)
        session.commit()
        return row, True
    except BaseException:
        session.rollback()
        raise


def _now() -> Any:
    return utcnow()


def _fill(
    row: BucketObject, key_prefix: str | None, stored: StoredBlobs, metadata: dict[str, Any], digest: str
) -> None:
    row.key_prefix = key_prefix
    row.blobs = stored.records
    row.metadata_ = metadata
    row.size_bytes = stored.size_bytes
    row.content_hash = digest


def create_objects_batch(
    db: Database, writer: ObjectWriter, bucket: Bucket, items: list[dict[str, Any]]
) -> tuple[list[BucketObject], list[dict[str, Any]]]:
    """Each item stands alone: one bad object fails alone and changes nothing. Each fetches its
    blobs before its own short transaction, so the batch never holds the database while waiting."""
    succeeded: list[BucketObject] = []
    failed: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            request = CreateObjectRequest.model_validate(item)
            succeeded.append(create_object(db, writer, bucket, request))
        except PydanticValidationError as exc:
            failed.append({"object_index": index, "error": _first_error(exc), "error_type": "ValidationError"})
        except StrataflowError as exc:
            failed.append({"object_index": index, "error": exc.message, "error_type": exc.type})
    if succeeded:  # each object's own object.created committed with it; this one sums the batch up
        with db.transaction() as session:
            emit(
                session,
                "objects.created.batch",
                namespace_id=bucket.namespace_id,
                resource_id=bucket.bucket_id,
                payload={
                    "bucket_id": bucket.bucket_id,
                    "bucket_name": bucket.bucket_name,
                    "object_ids": [row.object_id for row in succeeded],
                    "failed": len(failed),
                },
            )
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
    db: Database, writer: ObjectWriter, bucket: Bucket, row: BucketObject, request: UpdateObjectRequest
) -> BucketObject:
    """PUT: blobs and metadata given here replace the old ones. `row` is the object as read; new
    blob bytes are fetched and stored before the transaction that swaps them in opens."""
    stored = StoredBlobs()
    if request.blobs is not None:
        _validate(bucket, request.blobs, request.metadata if request.metadata is not None else dict(row.metadata_))
        stored = writer.store_inline(bucket, row.object_id, request.blobs)
    try:
        with db.session() as session:
            updated, old_keys = _replace(session, writer, bucket, row.object_id, request, stored)
    except BaseException:
        stored.undo(writer.blobs)
        raise
    _delete_keys(writer.blobs, old_keys - _blob_keys(updated.blobs))
    return updated


def _replace(
    session: Session,
    writer: ObjectWriter,
    bucket: Bucket,
    object_id: str,
    request: UpdateObjectRequest,
    stored: StoredBlobs,
) -> tuple[BucketObject, set[str]]:
    try:
        row = session.scalar(
            select(BucketObject).where(BucketObject.object_id == object_id, BucketObject.bucket_id == bucket.bucket_id)
        )
        if row is None:
            raise not_found("Object", object_id)
        metadata = request.metadata if request.metadata is not None else dict(row.metadata_)
        old_keys = _blob_keys(row.blobs)
        if request.blobs is None:
            check_metadata(bucket.bucket_schema, metadata)
            check_required(bucket.bucket_schema, {b["property"] for b in row.blobs} | set(metadata))
            row.metadata_ = metadata
            row.key_prefix = request.key_prefix
            row.unique_key_value = unique_key_value(bucket, metadata)
            row.updated_at = _now()
            object_changed(session, "object.updated", bucket, row)
            session.commit()
            return row, set()
        _validate(bucket, request.blobs, metadata)
        writer.bind_uploads(session, bucket, row.object_id, request.blobs, stored)
        row.unique_key_value = unique_key_value(bucket, metadata)
        _fill(row, request.key_prefix, stored, metadata, content_hash(stored.records))
        row.updated_at = _now()
        object_changed(session, "object.updated", bucket, row)
        session.commit()
        return row, old_keys
    except BaseException:
        session.rollback()
        raise


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
    row.updated_at = _now()
    object_changed(session, "object.updated", bucket, row)
    session.commit()
    return row


def delete_object(session: Session, blobs: BlobStore, index: DocumentIndex, row: BucketObject) -> None:
    """The object, its bytes, and every document descending from it in every collection of its namespace.

    The row goes first: a tier writing for it from then on finds it gone and writes nothing
    (or cleans up after itself, services/object_documents.py); documents written before are
    removed here.
    """
    keys = _blob_keys(row.blobs)
    object_id, namespace_id = row.object_id, row.namespace_id
    bucket = session.get(Bucket, row.bucket_id)
    if bucket is not None:
        object_changed(session, "object.deleted", bucket, row)
    session.delete(row)
    session.commit()
    _delete_keys(blobs, keys)  # after the commit: a failed delete never loses the row's bytes
    remove_documents_of_objects(index, blobs, namespace_collection_ids(session, namespace_id), [object_id])


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
        query = query.where(
            text_search(
                request.search,
                BucketObject.object_id,
                BucketObject.key_prefix,
                cast(BucketObject.metadata_, String),
                cast(BucketObject.blobs, String),
            )
        )
    if request.sort is not None:
        query = query.order_by(sort_expression(request.sort.field, request.sort.direction, OBJECT_FIELDS))
    query = query.order_by(BucketObject.created_at.desc(), BucketObject.object_id)
    return paginate(session, query, page)
