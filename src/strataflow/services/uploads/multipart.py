"""Resumable multipart uploads (beyond the contract) for files too large for one PUT.

`open_multipart` cuts a PENDING upload into parts and hands out a presigned
URL per part. Calling it again is how a client resumes: it answers the same
plan, fresh URLs, and which parts storage already holds. Parts may arrive in
any order and be sent again; the confirm call joins them (see `join_parts`).
"""

from __future__ import annotations

from typing import Any

from strataflow.blobs import BlobInfo, BlobStore
from strataflow.blobs.multipart import (
    MultipartGoneError,
    MultipartStore,
    PartInfo,
    PartPlan,
    Progress,
    abort_parts,
    plan_parts,
)
from strataflow.clock import as_utc, isoformat, utcnow
from strataflow.config import Settings
from strataflow.errors import BadRequestError, NotFoundError
from strataflow.schemas.uploads import OpenMultipartRequest, PartRef
from strataflow.services.uploads.crud import expire_overdue, get_upload
from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.tables import Bucket, Upload


def _multipart_store(blobs: BlobStore) -> MultipartStore:
    if not isinstance(blobs, MultipartStore):
        raise BadRequestError("This blob store does not support multipart uploads")
    return blobs


def _file_size(row: Upload, request: OpenMultipartRequest, settings: Settings) -> int:
    if row.file_size_bytes and request.file_size_bytes and row.file_size_bytes != request.file_size_bytes:
        raise BadRequestError(
            f"file_size_bytes {request.file_size_bytes} differs from the {row.file_size_bytes} declared at create",
            {"field": "file_size_bytes", "declared": row.file_size_bytes},
        )
    size = row.file_size_bytes or request.file_size_bytes
    if size is None:
        raise BadRequestError(
            "A multipart upload needs file_size_bytes (here or when the upload was created)",
            {"field": "file_size_bytes"},
        )
    if size > settings.max_upload_bytes:
        raise BadRequestError(
            f"file_size_bytes {size} exceeds the limit of {settings.max_upload_bytes} bytes",
            {"field": "file_size_bytes", "limit_bytes": settings.max_upload_bytes},
        )
    return size


def open_multipart(
    db: Database, blobs: BlobStore, settings: Settings, bucket: Bucket, upload_id: str, request: OpenMultipartRequest
) -> dict[str, Any]:
    """Open (or reopen) the upload's multipart upload. Storage is asked first, with no transaction
    open; the row is then updated under its lock, and a multipart opened by a concurrent call wins."""
    store = _multipart_store(blobs)
    expire_overdue(db, bucket.bucket_id, upload_id)
    with db.read_session() as session:
        row = get_upload(session, bucket, upload_id)
    _plan_for(row, request, settings)  # refuse a wrong request before asking storage anything
    observed = row.multipart_id
    alive = observed if observed is not None and not _gone(store, row) else None
    created = store.create_multipart(row.s3_key, row.content_type) if alive is None else None
    kept = False
    try:
        with db.transaction() as session:
            row = get_upload(session, bucket, upload_id, for_update=True)
            size, part_size, plan = _plan_for(row, request, settings)
            if row.multipart_id == observed:  # nobody changed it meanwhile
                row.multipart_id = alive or created
                kept = True
            row.file_size_bytes, row.part_size_bytes = size, part_size
    finally:
        if created is not None and not kept:
            abort_parts(blobs, row.s3_key, created)
    return _describe(store, row, plan, with_urls=True)


def _plan_for(row: Upload, request: OpenMultipartRequest, settings: Settings) -> tuple[int, int, PartPlan]:
    if row.status != Status.PENDING:
        raise BadRequestError(
            f"Upload '{row.upload_id}' is {row.status}; only a PENDING upload takes parts",
            {"upload_id": row.upload_id, "status": row.status},
        )
    size = _file_size(row, request, settings)
    part_size = request.part_size_bytes or row.part_size_bytes or settings.multipart_part_size_bytes
    if row.multipart_id and row.part_size_bytes and part_size != row.part_size_bytes:
        raise BadRequestError(
            f"A multipart upload with parts of {row.part_size_bytes} bytes is already open",
            {"part_size_bytes": row.part_size_bytes},
        )
    return size, part_size, plan_parts(size, part_size)


def multipart_status(db: Database, blobs: BlobStore, bucket: Bucket, upload_id: str) -> dict[str, Any]:
    store = _multipart_store(blobs)
    with db.read_session() as session:
        row = get_upload(session, bucket, upload_id)
    if row.multipart_id is None or row.file_size_bytes is None or row.part_size_bytes is None:
        raise NotFoundError(f"Upload '{upload_id}' has no open multipart upload", {"upload_id": upload_id})
    return _describe(store, row, PartPlan(row.file_size_bytes, row.part_size_bytes), with_urls=False)


def _gone(store: MultipartStore, row: Upload) -> bool:
    try:
        store.list_parts(row.s3_key, row.multipart_id or "")
        return False
    except MultipartGoneError:
        return True


def _describe(store: MultipartStore, row: Upload, plan: PartPlan, with_urls: bool) -> dict[str, Any]:
    assert row.multipart_id is not None
    received = {p.part_number: p for p in store.list_parts(row.s3_key, row.multipart_id)}
    seconds_left = max(1, int((as_utc(row.expires_at) - utcnow()).total_seconds()))
    parts = []
    for number in range(1, plan.count + 1):
        got = received.get(number)
        url = store.presigned_part_url(row.s3_key, row.multipart_id, number, seconds_left) if with_urls else None
        parts.append(
            {
                "part_number": number,
                "size_bytes": plan.size_of(number),
                "presigned_url": url,
                "uploaded": got is not None,
                "etag": got.etag if got else None,
            }
        )
    return {
        "upload_id": row.upload_id,
        "multipart_upload_id": row.multipart_id,
        "file_size_bytes": plan.file_size,
        "part_size_bytes": plan.part_size,
        "part_count": plan.count,
        "parts_uploaded": sum(1 for p in parts if p["uploaded"]),
        "expires_at": isoformat(row.expires_at),
        "parts": parts,
    }


def join_parts(
    blobs: BlobStore, row: Upload, claimed: list[PartRef] | None, progress: Progress | None = None
) -> BlobInfo:
    """Check every planned part arrived whole, then join them into the upload's key."""
    store = _multipart_store(blobs)
    assert row.multipart_id is not None
    try:
        received = {p.part_number: p for p in store.list_parts(row.s3_key, row.multipart_id)}
    except MultipartGoneError:
        joined = blobs.head(row.s3_key)  # joined by an earlier confirm that failed a later check
        if joined is None:
            raise BadRequestError(
                "The multipart upload no longer exists; open a new one", {"upload_id": row.upload_id}
            ) from None
        return joined
    if not received:
        whole = blobs.head(row.s3_key)
        if whole is not None:  # the client PUT the whole file to the upload's own URL instead
            return whole
    assert row.file_size_bytes is not None and row.part_size_bytes is not None
    plan = PartPlan(row.file_size_bytes, row.part_size_bytes)
    _check_parts(plan, received, claimed)
    parts = [received[n] for n in range(1, plan.count + 1)]
    return store.complete_multipart(row.s3_key, row.multipart_id, parts, progress)


def _check_parts(plan: PartPlan, received: dict[int, PartInfo], claimed: list[PartRef] | None) -> None:
    missing = [n for n in range(1, plan.count + 1) if n not in received]
    if missing:
        raise BadRequestError(
            f"{len(missing)} of {plan.count} parts have not been uploaded", {"missing_parts": missing[:100]}
        )
    wrong = {
        n: {"expected": plan.size_of(n), "stored": received[n].size}
        for n in range(1, plan.count + 1)
        if received[n].size != plan.size_of(n)
    }
    if wrong:
        raise BadRequestError(
            f"{len(wrong)} parts have the wrong size", {"part_sizes": dict(list(wrong.items())[:100])}
        )
    for ref in claimed or []:
        got = received.get(ref.part_number)
        if got is None or got.etag != ref.etag.strip().strip('"'):
            raise BadRequestError(
                f"Part {ref.part_number}: ETag {ref.etag} differs from the stored {got.etag if got else 'nothing'}",
                {"part_number": ref.part_number, "given": ref.etag, "stored": got.etag if got else None},
            )
