"""What every blob back end provides. Keys are '/'-separated relative paths."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from strataflow.errors import BadRequestError

_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9._\-=+@ ()\[\],]+$")


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    etag: str  # unquoted; MD5 hex for single-part writes, S3-style for multipart
    content_type: str | None = None
    sha256: str | None = None  # known without reading the bytes again (local store), else None


@dataclass(frozen=True)
class WrittenBlob:
    key: str
    size: int
    etag: str
    sha256: str


def validate_key(key: str) -> str:
    """Refuse keys that could escape the store: absolute paths, '..', odd characters."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise BadRequestError("Invalid blob key", {"key": key})
    parts = key.split("/")
    if any(p in ("", ".", "..") or not _SAFE_SEGMENT.match(p) for p in parts):
        raise BadRequestError("Invalid blob key", {"key": key})
    if posixpath.normpath(key) != key:
        raise BadRequestError("Invalid blob key", {"key": key})
    return key


@runtime_checkable
class BlobStore(Protocol):
    """Bytes by key, plus presigned URLs clients use to move bytes without us in the path."""

    scheme: str

    def uri(self, key: str) -> str:
        """The canonical address recorded in blob properties (e.g. s3://bucket/key)."""
        ...

    def put_stream(self, key: str, stream: BinaryIO, content_type: str | None = None) -> WrittenBlob: ...

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> WrittenBlob: ...

    def open(self, key: str) -> BinaryIO: ...

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...

    def head(self, key: str) -> BlobInfo | None: ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def presigned_get_url(self, key: str, expires_in: int) -> str: ...

    def presigned_put_url(self, key: str, content_type: str, expires_in: int) -> str: ...

    def check(self) -> bool:
        """True when the store is reachable and writable (health checks)."""
        ...
