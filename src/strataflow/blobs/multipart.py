"""Resumable multipart uploads: parts go to presigned URLs in any order, then are joined.

Both back ends follow S3's rules so a client cannot tell them apart: part
numbers 1..10000, every part but the last at least 5 MiB, and the joined
object's ETag is the MD5 of the parts' MD5 digests followed by `-<count>`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from strataflow.blobs.base import BlobInfo, BlobStore
from strataflow.errors import BadRequestError

MIN_PART_BYTES = 5 * 1024**2
MAX_PART_BYTES = 5 * 1024**3
MAX_PARTS = 10_000

# Called with the number of bytes handled so far; long joins use it to keep their lease.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class PartInfo:
    part_number: int
    size: int
    etag: str  # unquoted MD5 hex of the part


@dataclass(frozen=True)
class PartPlan:
    """How a file of `file_size` bytes is cut into parts of `part_size` (the last may be shorter)."""

    file_size: int
    part_size: int

    @property
    def count(self) -> int:
        return max(1, -(-self.file_size // self.part_size))

    def size_of(self, part_number: int) -> int:
        if part_number < self.count:
            return self.part_size
        return self.file_size - self.part_size * (self.count - 1)


def plan_parts(file_size: int, part_size: int) -> PartPlan:
    if not MIN_PART_BYTES <= part_size <= MAX_PART_BYTES:
        raise BadRequestError(
            f"part_size_bytes must be between {MIN_PART_BYTES} and {MAX_PART_BYTES}",
            {"part_size_bytes": part_size},
        )
    plan = PartPlan(file_size=file_size, part_size=part_size)
    if plan.count > MAX_PARTS:
        raise BadRequestError(
            f"{file_size} bytes in parts of {part_size} makes {plan.count} parts; at most {MAX_PARTS} are allowed",
            {"file_size_bytes": file_size, "part_size_bytes": part_size},
        )
    return plan


def multipart_etag(part_etags: list[str]) -> str:
    """S3's ETag of a multipart object: MD5 over the parts' binary MD5s, then '-<parts>'."""
    digest = hashlib.md5(b"".join(bytes.fromhex(e) for e in part_etags), usedforsecurity=False)
    return f"{digest.hexdigest()}-{len(part_etags)}"


class MultipartGoneError(Exception):
    """The multipart upload is unknown and its target does not exist either."""


@runtime_checkable
class MultipartStore(Protocol):
    """What a blob store offers for multipart uploads (both of ours do)."""

    def create_multipart(self, key: str, content_type: str) -> str:
        """Open a multipart upload of `key`; returns its id."""
        ...

    def presigned_part_url(self, key: str, multipart_id: str, part_number: int, expires_in: int) -> str: ...

    def list_parts(self, key: str, multipart_id: str) -> list[PartInfo]:
        """Parts received so far, by part number. Raises MultipartGoneError for an unknown id."""
        ...

    def complete_multipart(
        self, key: str, multipart_id: str, parts: list[PartInfo], progress: Progress | None = None
    ) -> BlobInfo:
        """Join the parts into `key`. Idempotent: once joined, answers the joined blob."""
        ...

    def abort_multipart(self, key: str, multipart_id: str) -> None: ...


def abort_parts(blobs: BlobStore, key: str, multipart_id: str | None) -> None:
    """Drop the parts of an unfinished multipart upload, if there is one and the store keeps parts."""
    if multipart_id and isinstance(blobs, MultipartStore):
        blobs.abort_multipart(key, multipart_id)
