"""Presigned uploads: the wire shape, read, list with stats, cancel, expire.

Creating lives in `upload_create`, confirming in `upload_confirm` and
`upload_tasks`, multipart in `upload_multipart`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.blobs.multipart import abort_parts
from strataflow.clock import isoformat, utcnow
from strataflow.errors import BadRequestError, ConflictError, NotFoundError, not_found
from strataflow.schemas.uploads import ListUploadsRequest
from strataflow.services.uploads.rules import upload_id_in_key
from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.filters import FieldMap, compile_filters, sort_expression, text_search
from strataflow.store.pagination import Page, PageRequest, paginate
from strataflow.store.tables import Bucket, Upload
from strataflow.transitions import transition

DOWNLOAD_URL_SECONDS = 3600
EXPIRED_MESSAGE = "The upload was not confirmed before its presigned URL expired."

UPLOAD_FIELDS = FieldMap(
    columns={
        "upload_id": Upload.upload_id,
        "filename": Upload.filename,
        "content_type": Upload.content_type,
        "status": Upload.status,
        "file_size_bytes": Upload.file_size_bytes,
        "blob_property": Upload.blob_property,
        "blob_type": Upload.blob_type,
        "file_hash": Upload.file_hash,
        "object_id": Upload.object_id,
        "is_duplicate": Upload.is_duplicate,
        "create_object_on_confirm": Upload.create_object_on_confirm,
        "created_at": Upload.created_at,
        "updated_at": Upload.updated_at,
        "expires_at": Upload.expires_at,
        "completed_at": Upload.completed_at,
    },
    json_columns={"metadata": Upload.metadata_, "object_metadata": Upload.object_metadata},
)


# -- wire shape -----------------------------------------------------------------


def upload_payload(row: Upload, presigned_url: str | None = None) -> dict[str, Any]:
    return {
        "upload_id": row.upload_id,
        "bucket_id": row.bucket_id,
        "filename": row.filename,
        "content_type": row.content_type,
        "file_size_bytes": row.stored_size_bytes or row.file_size_bytes,
        "presigned_url": presigned_url,
        "presigned_url_expiration": row.presigned_url_expiration,
        "s3_key": row.s3_key,
        "status": row.status,
        "metadata": row.metadata_ or {},
        "create_object_on_confirm": row.create_object_on_confirm,
        "object_metadata": row.object_metadata,
        "blob_property": row.blob_property,
        "blob_type": row.blob_type,
        "file_hash": row.file_hash or row.content_sha256,
        "skip_duplicates": row.skip_duplicates,
        "is_duplicate": row.is_duplicate,
        "duplicate_of_upload_id": row.duplicate_of_upload_id,
        "skipped_unique_key": row.skipped_unique_key,
        "existing_object_id": row.existing_object_id,
        "message": row.message,
        "created_at": isoformat(row.created_at),
        "expires_at": isoformat(row.expires_at),
        "completed_at": isoformat(row.completed_at),
        "verified_at": isoformat(row.verified_at),
        "etag": row.etag,
        "object_id": row.object_id,
        "task_id": row.task_id,
    }


# -- read, list, cancel ---------------------------------------------------------------


def find_completed_by_hash(session: Session, bucket_id: str, sha256: str, exclude: str | None = None) -> Upload | None:
    query = select(Upload).where(
        Upload.bucket_id == bucket_id,
        Upload.content_sha256 == sha256,
        Upload.status == Status.COMPLETED,
        Upload.is_duplicate.is_(False),
    )
    if exclude is not None:
        query = query.where(Upload.upload_id != exclude)
    return session.scalars(query.order_by(Upload.completed_at).limit(1)).first()


def expire_overdue(db: Database, bucket_id: str, upload_id: str | None = None) -> int:
    """PENDING uploads whose URL expired become FAILED. Cheap when there are none (a read)."""
    now = utcnow()
    query = select(Upload.upload_id).where(
        Upload.bucket_id == bucket_id, Upload.status == Status.PENDING, Upload.expires_at < now
    )
    if upload_id is not None:
        query = query.where(Upload.upload_id == upload_id)
    with db.read_session() as session:
        overdue = list(session.scalars(query))
    if not overdue:
        return 0
    with db.transaction() as session:
        rows = session.scalars(
            select(Upload).where(Upload.upload_id.in_(overdue), Upload.status == Status.PENDING).with_for_update()
        )
        for row in rows:
            transition(session, row, Status.FAILED, "presigned URL expired before confirmation")
            row.message = EXPIRED_MESSAGE
    return len(overdue)


def get_upload(session: Session, bucket: Bucket, upload_id: str, *, for_update: bool = False) -> Upload:
    query = select(Upload).where(Upload.upload_id == upload_id, Upload.bucket_id == bucket.bucket_id)
    row = session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise not_found("Upload", upload_id)
    return row


def download_url(blobs: BlobStore, row: Upload) -> str | None:
    """A fresh GET URL for a completed upload's bytes (never the original PUT URL)."""
    if row.status != Status.COMPLETED:
        return None
    return blobs.presigned_get_url(row.s3_key, DOWNLOAD_URL_SECONDS)


def list_uploads(
    session: Session, bucket: Bucket, request: ListUploadsRequest, page: PageRequest
) -> tuple[Page, dict[str, Any]]:
    query = select(Upload).where(Upload.bucket_id == bucket.bucket_id)
    clause = compile_filters(request.filters, UPLOAD_FIELDS)
    if clause is not None:
        query = query.where(clause)
    if request.search:
        query = query.where(
            text_search(request.search, Upload.filename, Upload.upload_id, cast(Upload.metadata_, String))
        )
    stats = _stats(session, query)
    if request.sort is not None:
        query = query.order_by(sort_expression(request.sort.field, request.sort.direction, UPLOAD_FIELDS))
    query = query.order_by(Upload.created_at.desc(), Upload.upload_id)
    return paginate(session, query, page), stats


def _stats(session: Session, query: Any) -> dict[str, Any]:
    """Aggregates over every upload the filters match, not only the page."""
    matched = query.subquery()
    size = func.coalesce(matched.c.stored_size_bytes, matched.c.file_size_bytes)
    by_status: dict[str, int] = {}
    total_bytes = sized = 0
    grouped = select(matched.c.status, func.count(), func.coalesce(func.sum(size), 0), func.count(size))
    for status, count, byte_sum, with_size in session.execute(grouped.group_by(matched.c.status)):
        by_status[status] = int(count)
        total_bytes += int(byte_sum)
        sized += int(with_size)
    buckets = session.scalar(select(func.count(func.distinct(matched.c.bucket_id)))) or 0
    return {
        "total_uploads": sum(by_status.values()),
        "total_size_bytes": total_bytes,
        "uploads_by_status": by_status,
        "avg_file_size_bytes": total_bytes / sized if sized else 0.0,
        "unique_buckets": int(buckets),
    }


def cancel_upload(session: Session, blobs: BlobStore, bucket: Bucket, upload_id: str, delete_bytes: bool) -> None:
    """DELETE: a COMPLETED upload stays; a waiting one becomes CANCELED; bytes go when asked."""
    row = get_upload(session, bucket, upload_id, for_update=True)
    status = row.status
    if status is Status.COMPLETED:
        raise BadRequestError(
            f"Upload '{upload_id}' is COMPLETED and cannot be deleted; delete its object instead",
            {"upload_id": upload_id, "object_id": row.object_id},
        )
    if status is Status.PROCESSING:
        raise BadRequestError(
            f"Upload '{upload_id}' is being confirmed; try again when it finishes",
            {"upload_id": upload_id, "task_id": row.task_id},
        )
    if status is Status.PENDING:
        transition(session, row, Status.CANCELED, "deleted through the API")
        row.message = "Canceled by a delete request."
    key, multipart_id = row.s3_key, row.multipart_id
    if delete_bytes:
        row.multipart_id = None
    session.commit()
    if delete_bytes:  # after the commit, so a failed commit never loses bytes
        abort_parts(blobs, key, multipart_id)
        blobs.delete(key)


def refuse_put_to_closed_upload(db: Database, key: str) -> None:
    """Presigned PUTs may write an upload's key only while that upload waits for its bytes.

    A confirmed upload's bytes are its object's blob where they lie (nothing is copied),
    and its presigned URL stays valid until it expires: replaying it after the confirm
    would silently replace the object's content behind its recorded hash. Keys outside
    the uploads layout (multipart parts, other blobs) are left to the signature alone.
    """
    upload_id = upload_id_in_key(key)
    if upload_id is None:
        return
    with db.read_session() as session:
        row = session.get(Upload, upload_id)
    if row is None or row.s3_key != key:
        raise NotFoundError("No upload waits for bytes at this URL", {"key": key})
    if row.status != Status.PENDING:
        raise ConflictError(
            f"Upload '{row.upload_id}' is {row.status}; its presigned URL can no longer write",
            {"upload_id": row.upload_id, "status": row.status},
        )
