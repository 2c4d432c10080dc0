"""The local blob store's presigned URLs: PUT streams a body to disk, GET streams it back.

No API key here: the HMAC signature in the URL is the permission. It covers
method, key, Content-Type (PUT) and expiry, so a URL cannot be stretched to
another file, verb, type or time. A refused request writes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from strataflow.api.deps import RuntimeDep
from strataflow.blobs import WrittenBlob
from strataflow.blobs.download import download_headers, media_type_of
from strataflow.blobs.local import LocalBlobStore, LocalBlobWriter
from strataflow.errors import ForbiddenError, NotFoundError, PayloadTooLargeError
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.services.uploads.crud import refuse_put_to_closed_upload

router = APIRouter(prefix="/v1/blobs", tags=["Blobs"], responses=ERROR_RESPONSES)

Expires = Annotated[str | None, Query(max_length=20)]
Signature = Annotated[str | None, Query(max_length=128)]
_BATCH_BYTES = 1 << 20  # bytes handed to the disk thread at a time (measured best of 1, 4, 16 MiB)
_BATCHES_AHEAD = 4  # batches queued behind the one being received before it waits for the disk


def _local_store(runtime: RuntimeDep) -> LocalBlobStore:
    if not isinstance(runtime.blobs, LocalBlobStore):
        raise NotFoundError("This server keeps blobs in S3; use the URLs S3 signed")
    return runtime.blobs


def _expiry(expires: str | None, signature: str | None) -> int:
    if not expires or not signature or not expires.isdigit():
        raise ForbiddenError("This URL carries no valid signature")
    deadline = int(expires)
    if time.time() > deadline:
        raise ForbiddenError("This URL has expired", {"expired_at": deadline})
    return deadline


@router.put("/{key:path}")
async def put_blob(
    key: str, request: Request, runtime: RuntimeDep, expires: Expires = None, signature: Signature = None
) -> Response:
    store = _local_store(runtime)
    deadline = _expiry(expires, signature)
    content_type = request.headers.get("content-type", "")
    if not store.verify_put(key, content_type, deadline, signature or ""):
        raise ForbiddenError(
            "The URL's signature does not match this request (method, key or Content-Type)",
            {"content_type": content_type},
        )
    limit = runtime.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"The body exceeds the upload limit of {limit} bytes", {"limit_bytes": limit})
    # Checked before reading the body and again just before the bytes become visible, so a
    # replay, or a PUT that was still streaming while the upload got confirmed, changes nothing.
    await run_in_threadpool(refuse_put_to_closed_upload, runtime.db, key)
    writer = await run_in_threadpool(store.open_writer, key)
    try:
        written = await _receive(request, writer, limit, lambda: refuse_put_to_closed_upload(runtime.db, key))
    finally:
        writer.abort()  # a no-op once committed; otherwise the temporary file goes
    return Response(status_code=200, headers={"ETag": f'"{written.etag}"'})


async def _receive(
    request: Request, writer: LocalBlobWriter, limit: int, before_commit: Callable[[], None]
) -> WrittenBlob:
    """Stream the body into `writer`. Each batch is written and hashed on the writer's threads
    while the next bytes arrive (`write_behind`); at most `_BATCHES_AHEAD` batches wait there,
    so memory stays at a few MiB whatever the body's size."""
    ahead: deque[asyncio.Future[None]] = deque()
    batch: list[bytes] = []
    batched = received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLargeError(
                    f"The body exceeds the upload limit of {limit} bytes", {"limit_bytes": limit}
                )
            batch.append(chunk)
            batched += len(chunk)
            if batched >= _BATCH_BYTES:
                # the pieces as received, not joined: a join copied every byte once more
                ahead.append(asyncio.wrap_future(writer.write_behind(batch)))
                batch, batched = [], 0
                if len(ahead) > _BATCHES_AHEAD:
                    await ahead.popleft()
        if batch:
            ahead.append(asyncio.wrap_future(writer.write_behind(batch)))
        while ahead:
            await ahead.popleft()
    finally:
        # never leave a write running into a file about to be removed (abort waits for them too)
        await asyncio.gather(*ahead, return_exceptions=True)
    await run_in_threadpool(before_commit)
    return await run_in_threadpool(writer.commit)


@router.get("/{key:path}")
def get_blob(key: str, runtime: RuntimeDep, expires: Expires = None, signature: Signature = None) -> FileResponse:
    store = _local_store(runtime)
    deadline = _expiry(expires, signature)
    if not store.verify("GET", key, "", deadline, signature or ""):
        raise ForbiddenError("The URL's signature does not match this request (method or key)")
    info = store.head(key)
    if info is None:
        raise NotFoundError("No blob is stored at this URL", {"key": key})
    media_type = media_type_of(key)
    # A blob is a download, never a page of this origin (the console's): see blobs.download.
    headers = {"ETag": f'"{info.etag}"', **download_headers(key, media_type)}
    return FileResponse(store.path(key), media_type=media_type, headers=headers)
