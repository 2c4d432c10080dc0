"""Confirming uploads: check what storage holds, then complete the upload and make its object.

A confirm runs in three steps so that no database lock is held while bytes
are read: (1) read the upload, (2) verify the stored bytes (existence, size,
ETag, content type, SHA-256; a multipart upload is joined first), (3) in one
short transaction with the upload row locked, complete it and create its
object. Step 3 re-reads the row under the lock, so of two racing confirms the
second sees COMPLETED and answers the first one's object: one object, always.

A synchronous confirm that finds the wrong bytes raises and changes nothing:
the client can PUT again and confirm again. A background confirm that fails
marks the upload FAILED, as the contract says.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from strataflow.blobs import BlobInfo, BlobStore
from strataflow.blobs.multipart import Progress
from strataflow.clock import isoformat, utcnow
from strataflow.engine.jobs import JobContext, extend_lease
from strataflow.errors import BadRequestError, StrataflowError
from strataflow.outbound import OutboundClient, OutboundPolicy
from strataflow.public_errors import internal_error_message
from strataflow.schemas.objects import CreateBlobRequest, CreateObjectRequest
from strataflow.schemas.uploads import PartRef
from strataflow.services.buckets.mime import mime_type
from strataflow.services.objects.crud import ObjectWriter, create_object_in
from strataflow.services.objects.sources import BlobSources
from strataflow.services.uploads.crud import EXPIRED_MESSAGE, expire_overdue, find_completed_by_hash, get_upload
from strataflow.services.uploads.multipart import join_parts
from strataflow.statuses import Status
from strataflow.store.tables import Bucket, Upload
from strataflow.transitions import Verdict, transition, try_transition

_HASH_CHUNK = 8 << 20
_LEASE_RENEW_S = 10.0

log = logging.getLogger("strataflow.uploads")


@dataclass(frozen=True)
class Claim:
    """What the client says it uploaded (all optional)."""

    etag: str | None = None
    file_size_bytes: int | None = None
    parts: list[PartRef] | None = None

    def as_input(self) -> dict[str, Any]:
        return {
            "etag": self.etag,
            "file_size_bytes": self.file_size_bytes,
            "parts": [p.model_dump() for p in self.parts] if self.parts else None,
        }

    @classmethod
    def from_input(cls, data: dict[str, Any]) -> Claim:
        parts = [PartRef.model_validate(p) for p in data.get("parts") or []] or None
        return cls(etag=data.get("etag"), file_size_bytes=data.get("file_size_bytes"), parts=parts)


@dataclass(frozen=True)
class Verified:
    size: int
    etag: str
    sha256: str


class LeaseKeeper:
    """Progress callback that keeps a background task's lease while it reads many bytes."""

    def __init__(self, context: JobContext, task_id: str, owner: str | None, token: int | None = None) -> None:
        self.context, self.task_id, self.owner, self.token = context, task_id, owner, token
        self._last = time.monotonic()

    def __call__(self, _done: int = 0) -> None:
        if time.monotonic() - self._last >= _LEASE_RENEW_S:
            self._last = time.monotonic()
            extend_lease(self.context.db, self.task_id, self.owner, self.token)


def object_writer(context: JobContext) -> ObjectWriter:
    settings = context.settings
    outbound = context.services.get("outbound") or OutboundClient(OutboundPolicy.from_settings(settings))
    return ObjectWriter(context.blobs, BlobSources(settings.max_inline_blob_bytes, outbound))


def confirm_payload(row: Upload, message: str | None = None) -> dict[str, Any]:
    return {
        "upload_id": row.upload_id,
        "status": row.status,
        "etag": row.etag,
        "file_size_bytes": row.stored_size_bytes or row.file_size_bytes,
        "file_hash": row.content_sha256 or row.file_hash,
        "verified_at": isoformat(row.verified_at),
        "completed_at": isoformat(row.completed_at),
        "object_id": row.object_id,
        "task_id": row.task_id,
        "message": message or row.message,
    }


# -- step 1: is there anything to confirm? ------------------------------------------


def load_for_confirm(context: JobContext, bucket: Bucket, upload_id: str) -> Upload:
    """The upload as it stands; an expired PENDING one is failed first."""
    expire_overdue(context.db, bucket.bucket_id, upload_id)
    with context.db.read_session() as session:
        return get_upload(session, bucket, upload_id)


def refuse_unconfirmable(row: Upload) -> None:
    if row.status in (Status.FAILED, Status.CANCELED, Status.SKIPPED):
        reason = row.message or ""
        if row.status == Status.FAILED and not reason:
            reason = EXPIRED_MESSAGE
        raise BadRequestError(
            f"Upload '{row.upload_id}' is {row.status} and cannot be confirmed. {reason}".strip(),
            {"upload_id": row.upload_id, "status": row.status},
        )


# -- step 2: what does storage hold? ----------------------------------------------------


def stored_info(blobs: BlobStore, row: Upload, claim: Claim, progress: Progress | None = None) -> BlobInfo:
    """HEAD the upload's key, joining its parts first when it is a multipart upload."""
    if row.multipart_id is not None:
        return join_parts(blobs, row, claim.parts, progress)
    info = blobs.head(row.s3_key)
    if info is None:
        raise BadRequestError(
            f"Nothing has been uploaded for '{row.upload_id}' yet: PUT the file to its presigned URL first",
            {"upload_id": row.upload_id, "s3_key": row.s3_key},
        )
    return info


def check_matches(row: Upload, claim: Claim, info: BlobInfo, max_bytes: int) -> None:
    """Compare storage with the client's claim and the create request; name every difference."""
    differences: dict[str, dict[str, Any]] = {}
    if claim.file_size_bytes is not None and claim.file_size_bytes != info.size:
        differences["file_size_bytes"] = {"given": claim.file_size_bytes, "stored": info.size}
    if row.file_size_bytes is not None and row.file_size_bytes != info.size:
        differences["declared_file_size_bytes"] = {"declared": row.file_size_bytes, "stored": info.size}
    if claim.etag and _bare_etag(claim.etag) != info.etag:
        differences["etag"] = {"given": claim.etag, "stored": info.etag}
    if info.content_type and mime_type(info.content_type) != mime_type(row.content_type):
        differences["content_type"] = {"declared": row.content_type, "stored": info.content_type}
    if info.size > max_bytes:
        differences["size_limit"] = {"limit_bytes": max_bytes, "stored": info.size}
    if differences:
        what = "; ".join(
            f"{name} ({', '.join(f'{k} {v}' for k, v in values.items())})" for name, values in differences.items()
        )
        raise BadRequestError(
            f"The stored file does not match: {what}", {"upload_id": row.upload_id, "mismatches": differences}
        )


def _bare_etag(etag: str) -> str:
    value = etag.strip()
    value = value.removeprefix("W/")
    return value.strip('"')


def verify_stored(
    blobs: BlobStore, row: Upload, claim: Claim, max_bytes: int, progress: Progress | None = None
) -> Verified:
    info = stored_info(blobs, row, claim, progress)
    check_matches(row, claim, info, max_bytes)
    sha256 = info.sha256 or _sha256_of(blobs, row.s3_key, progress)
    if row.file_hash and sha256 != row.file_hash:
        raise BadRequestError(
            f"The SHA-256 of the stored bytes ({sha256}) differs from the file_hash given at create ({row.file_hash})",
            {"upload_id": row.upload_id, "file_hash": row.file_hash, "stored_sha256": sha256},
        )
    return Verified(size=info.size, etag=info.etag, sha256=sha256)


def _sha256_of(blobs: BlobStore, key: str, progress: Progress | None) -> str:
    digest, done = hashlib.sha256(), 0
    for chunk in blobs.iter_chunks(key, _HASH_CHUNK):
        digest.update(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done)
    return digest.hexdigest()


# -- step 3: complete, under the row lock -----------------------------------------------


def complete_upload(
    context: JobContext, bucket_id: str, upload_id: str, verified: Verified, *, from_background: bool
) -> Upload:
    """Mark the upload COMPLETED and create its object, once. Safe to call concurrently."""
    try:
        return _complete_once(context, bucket_id, upload_id, verified, from_background)
    except StaleDataError:  # a concurrent writer changed the row first; the retry sees its result
        return _complete_once(context, bucket_id, upload_id, verified, from_background)


def _complete_once(
    context: JobContext, bucket_id: str, upload_id: str, verified: Verified, from_background: bool
) -> Upload:
    with context.db.session() as session:
        try:
            bucket = session.get(Bucket, bucket_id)
            if bucket is None:
                raise BadRequestError(f"The bucket of upload '{upload_id}' no longer exists", {"upload_id": upload_id})
            row = get_upload(session, bucket, upload_id, for_update=True)
            if row.status == Status.COMPLETED:
                session.commit()  # nothing changed; releases the lock and keeps `row` loaded
                return row  # another confirm finished first: its answer is ours
            waiting = {Status.PENDING} | ({Status.PROCESSING} if from_background else set())
            if row.status not in waiting:
                refuse_unconfirmable(row)
                raise BadRequestError(
                    f"Upload '{upload_id}' is {row.status}; it is being confirmed already",
                    {"upload_id": upload_id, "task_id": row.task_id},
                )
            now = utcnow()
            _record_verification(session, row, verified)
            transition(
                session, row, Status.COMPLETED, "confirmed: stored bytes verified", verified_at=now, completed_at=now
            )
            if row.create_object_on_confirm and not row.is_duplicate:
                create_object_in(
                    session,
                    object_writer(context),
                    bucket,
                    CreateObjectRequest(
                        blobs=[
                            CreateBlobRequest(
                                property=row.blob_property or "",
                                type=row.blob_type or "",
                                upload_id=row.upload_id,
                                filename=row.filename,
                            )
                        ],
                        metadata=dict(row.object_metadata or {}),
                    ),
                )  # binds the object to the upload and commits both together
            else:
                session.commit()
            return row
        except BaseException:
            session.rollback()
            raise


def _record_verification(session: Session, row: Upload, verified: Verified) -> None:
    row.stored_size_bytes = verified.size
    row.etag = verified.etag
    row.content_sha256 = verified.sha256
    row.multipart_id = None
    row.message = "Upload confirmed."
    original = find_completed_by_hash(session, row.bucket_id, verified.sha256, exclude=row.upload_id)
    if original is not None and row.skip_duplicates:
        row.is_duplicate = True
        row.duplicate_of_upload_id = original.upload_id
        row.object_id = original.object_id
        row.message = f"Same content as upload {original.upload_id}; no new object was created."


def mark_failed(context: JobContext, bucket_id: str, upload_id: str, reason: str) -> None:
    """A background confirm failed: the upload ends FAILED with the reason."""
    with context.db.transaction() as session:
        bucket = session.get(Bucket, bucket_id)
        if bucket is None:
            return
        row = get_upload(session, bucket, upload_id, for_update=True)
        if try_transition(session, row, Status.FAILED, f"confirmation failed: {reason}") is Verdict.ACCEPTED:
            row.message = f"Confirmation failed: {reason}"


def confirm_inline(
    context: JobContext, bucket: Bucket, upload_id: str, claim: Claim, progress: Progress | None = None
) -> Upload:
    """Steps 1-3 in the calling thread (a sync confirm, or one item of a batch confirm)."""
    row = load_for_confirm(context, bucket, upload_id)
    if row.status == Status.COMPLETED:
        return row
    refuse_unconfirmable(row)
    if row.status == Status.PROCESSING:
        return row  # a background confirm owns it
    verified = verify_stored(context.blobs, row, claim, context.settings.max_upload_bytes, progress)
    return complete_upload(context, bucket.bucket_id, upload_id, verified, from_background=False)


def describe_error(exc: BaseException) -> tuple[str, str]:
    """The message and type a client reads; an unexpected exception's text and traceback go to the log only."""
    if isinstance(exc, StrataflowError):
        return exc.message, exc.type
    log.error("confirming an upload failed", exc_info=exc)
    return internal_error_message(exc, "confirming the upload"), "InternalServerError"
