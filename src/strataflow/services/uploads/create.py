"""Creating presigned uploads, one or a batch.

A request is validated whole before any record is written or URL minted:
one bad item of a batch refuses the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.clock import utcnow
from strataflow.config import Settings
from strataflow.errors import BadRequestError
from strataflow.ids import new_id
from strataflow.schemas.uploads import CreateUploadRequest
from strataflow.services.objects.crud import unique_key_value
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.services.uploads.crud import find_completed_by_hash, upload_payload
from strataflow.services.uploads.rules import (
    BlobTarget,
    check_content_type,
    check_filename,
    resolve_blob_target,
    upload_key,
)
from strataflow.statuses import Status
from strataflow.store.tables import Bucket, BucketObject, Organization, Upload
from strataflow.transitions import create

_LIVE = (Status.PENDING, Status.PROCESSING, Status.COMPLETED)


def duplicate_payload(original: Upload) -> dict[str, Any]:
    """The answer to a create whose file was already uploaded: the original, flagged."""
    payload = upload_payload(original)
    payload.update(
        is_duplicate=True,
        duplicate_of_upload_id=original.upload_id,
        presigned_url=None,
        message="A completed upload with the same SHA-256 exists in this bucket; no upload is needed.",
    )
    return payload


@dataclass(frozen=True)
class _Planned:
    request: CreateUploadRequest
    target: BlobTarget


def _check_bucket_open(bucket: Bucket) -> None:
    if bucket.status != Status.ACTIVE or bucket.is_locked:
        raise BadRequestError(
            f"Bucket '{bucket.bucket_name}' does not accept uploads (status {bucket.status}"
            f"{', locked' if bucket.is_locked else ''})",
            {"bucket_id": bucket.bucket_id},
        )


def _plan(bucket: Bucket, request: CreateUploadRequest, settings: Settings) -> _Planned:
    check_filename(request.filename)
    check_content_type(request.content_type)
    if request.file_size_bytes is not None and request.file_size_bytes > settings.max_upload_bytes:
        raise BadRequestError(
            f"file_size_bytes {request.file_size_bytes} exceeds the limit of {settings.max_upload_bytes} bytes",
            {"field": "file_size_bytes", "limit_bytes": settings.max_upload_bytes},
        )
    target = resolve_blob_target(
        bucket.bucket_schema,
        request.filename,
        request.content_type,
        request.blob_property,
        request.blob_type,
        request.create_object_on_confirm,
        request.object_metadata,
    )
    if request.create_object_on_confirm and bucket.unique_key:
        unique_key_value(bucket, request.object_metadata or {})  # the key fields must be there now
    return _Planned(request, target)


def _check_quota(session: Session, scope: NamespaceScope, plans: list[_Planned], settings: Settings) -> None:
    if settings.upload_quota_bytes is None:
        return
    asked = sum(p.request.file_size_bytes or 0 for p in plans)
    held = (
        session.scalar(
            select(
                func.coalesce(func.sum(func.coalesce(Upload.stored_size_bytes, Upload.file_size_bytes, 0)), 0)
            ).where(Upload.namespace_id == scope.namespace_id, Upload.status.in_(_LIVE))
        )
        or 0
    )
    if held + asked > settings.upload_quota_bytes:
        raise BadRequestError(
            f"Upload quota exceeded: {held} bytes held + {asked} asked > {settings.upload_quota_bytes}",
            {"quota_bytes": settings.upload_quota_bytes, "used_bytes": int(held), "requested_bytes": asked},
        )


def _existing_object_for_key(session: Session, bucket: Bucket, request: CreateUploadRequest) -> str | None:
    """The object already holding this unique key, when the bucket would refuse a second one."""
    if not (bucket.unique_key and request.create_object_on_confirm):
        return None
    if (bucket.unique_key.get("default_policy") or "insert") != "insert":
        return None  # update/upsert buckets replace the object at confirm
    value = unique_key_value(bucket, request.object_metadata or {})
    return session.scalar(
        select(BucketObject.object_id).where(
            BucketObject.bucket_id == bucket.bucket_id, BucketObject.unique_key_value == value
        )
    )


def _new_row(internal_id: str, scope: NamespaceScope, bucket: Bucket, plan: _Planned, now: datetime) -> Upload:
    request = plan.request
    upload_id = new_id("upload")
    key = upload_key(internal_id, scope.namespace_id, upload_id, request.filename)
    return Upload(
        upload_id=upload_id,
        bucket_id=bucket.bucket_id,
        namespace_id=scope.namespace_id,
        filename=request.filename,
        content_type=request.content_type,
        file_size_bytes=request.file_size_bytes,
        presigned_url_expiration=request.presigned_url_expiration,
        s3_key=key,
        metadata_=dict(request.metadata),
        create_object_on_confirm=request.create_object_on_confirm,
        object_metadata=request.object_metadata,
        blob_property=plan.target.blob_property,
        blob_type=plan.target.blob_type.value if plan.target.blob_type else None,
        file_hash=request.file_hash,
        skip_duplicates=request.skip_duplicates,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(seconds=request.presigned_url_expiration),
    )


def create_uploads(
    session: Session,
    blobs: BlobStore,
    settings: Settings,
    scope: NamespaceScope,
    bucket: Bucket,
    requests: list[CreateUploadRequest],
) -> list[dict[str, Any]]:
    """Validate every request first (one bad item refuses them all), then record and sign."""
    _check_bucket_open(bucket)
    plans = []
    for index, request in enumerate(requests):
        try:
            plans.append(_plan(bucket, request, settings))
        except BadRequestError as exc:
            if len(requests) > 1:
                exc.message = f"uploads[{index}]: {exc.message}"
                exc.details = {**(exc.details or {}), "index": index}
            raise
    _check_quota(session, scope, plans, settings)
    organization = session.get(Organization, scope.org_id)
    assert organization is not None
    now = utcnow()
    answers: list[dict[str, Any] | Upload] = []
    for plan in plans:
        request = plan.request
        original = None
        if request.file_hash and request.skip_duplicates:
            original = find_completed_by_hash(session, bucket.bucket_id, request.file_hash)
        if original is not None:
            answers.append(duplicate_payload(original))
            continue
        row = _new_row(organization.internal_id, scope, bucket, plan, now)
        existing = _existing_object_for_key(session, bucket, request)
        if existing is not None:  # recorded, never signed: nothing will be uploaded
            row.skipped_unique_key = True
            row.existing_object_id = existing
            row.message = "An object with the same unique key exists in this bucket; no upload is needed."
            create(session, row, Status.SKIPPED, "an object with the same unique key exists")
        else:
            create(session, row, Status.PENDING, "presigned URL issued")
        answers.append(row)
    session.commit()
    return [
        a
        if isinstance(a, dict)
        else upload_payload(
            a,
            None
            if a.skipped_unique_key
            else blobs.presigned_put_url(a.s3_key, a.content_type, a.presigned_url_expiration),
        )
        for a in answers
    ]


def merge_shared(
    request: CreateUploadRequest, shared_metadata: dict[str, Any] | None, shared_object_metadata: dict[str, Any] | None
) -> CreateUploadRequest:
    """A batch item with the shared dicts merged under its own keys (the item's keys win)."""
    changes: dict[str, Any] = {}
    if shared_metadata:
        changes["metadata"] = {**shared_metadata, **request.metadata}
    if shared_object_metadata:
        changes["object_metadata"] = {**shared_object_metadata, **(request.object_metadata or {})}
    return request.model_copy(update=changes) if changes else request
