"""The WebDataset layout of an export: tar shards of a fixed number of samples, one per document.

A sample is `<document_id>.json` (the row the other formats write) and, when media is asked for,
`<document_id>.<ext>` holding the bytes of the source object's file. Document ids hold no dot,
so a loader splitting member names at the first dot finds the document id as the sample key.
Media is copied from the blob store to a temporary file before it enters a shard: a download
that fails part-way is counted and leaves the shard whole.
"""

from __future__ import annotations

import io
import json
import mimetypes
import re
import secrets
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.index.records import StoredDocument
from strataflow.services.documents.lineage import source_object_id
from strataflow.services.documents.media import source_blob
from strataflow.store.tables import BucketObject

MAX_MEDIA_MEMBER_BYTES = 1 << 30  # a larger file is left out of its sample and counted
_EXTENSION = re.compile(r"^[a-z0-9]{1,16}$")


def shard_name(position: int) -> str:
    return f"documents-{position:06d}.tar"


def shard_pattern(count: int) -> str:
    """The brace pattern WebDataset loaders take for every shard, e.g. documents-{000000..000007}.tar."""
    return shard_name(0) if count == 1 else f"documents-{{{0:06d}..{count - 1:06d}}}.tar"


@dataclass
class MediaSummary:
    """The SDK's ExportMediaSummary: every outcome counted, so a short export reads as incomplete."""

    samples_with_media: int = 0
    samples_without_media: int = 0
    members_written: int = 0
    members_skipped_too_large: int = 0
    objects_not_found: int = 0
    download_failures: int = 0
    media_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Media:
    """A source file for one sample: its blob key and the extension its member takes."""

    key: str
    extension: str


@dataclass
class Shard:
    path: Path
    samples: int = 0


@dataclass
class ShardWriter:
    """Writes samples into numbered tar shards of at most `per_shard` samples each."""

    folder: Path
    per_shard: int
    shards: list[Shard] = field(default_factory=list)
    _tar: tarfile.TarFile | None = None

    def add(self, key: str, row: dict[str, Any], media: Path | None = None, extension: str = "") -> None:
        tar = self._current()
        body = json.dumps(row, ensure_ascii=False, default=str).encode()
        tar.addfile(_member(f"{key}.json", len(body)), io.BytesIO(body))
        if media is not None:
            with media.open("rb") as handle:
                tar.addfile(_member(f"{key}.{extension}", media.stat().st_size), handle)
        self.shards[-1].samples += 1

    def close(self) -> list[Shard]:
        """Every shard, closed; an export of no documents still has one (empty) shard to download."""
        if not self.shards:
            self._current()
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        return self.shards

    def _current(self) -> tarfile.TarFile:
        if self._tar is None or self.shards[-1].samples >= self.per_shard:
            if self._tar is not None:
                self._tar.close()
            shard = Shard(self.folder / shard_name(len(self.shards)))
            self.shards.append(shard)
            self._tar = tarfile.open(shard.path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 (closed by close)
        return self._tar


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = int(time.time())
    return info


def media_of(session: Session, namespace_id: str, docs: list[StoredDocument]) -> dict[str, Media | None]:
    """Each document's source file, looked up for a whole batch at once. A document without a
    source object, or whose object keeps no file, maps to None; one whose object is gone is absent."""
    wanted = {doc.document_id: source_object_id(doc) for doc in docs}
    ids = sorted({i for i in wanted.values() if i})
    objects = (
        {
            row.object_id: row
            for row in session.scalars(
                select(BucketObject).where(BucketObject.namespace_id == namespace_id, BucketObject.object_id.in_(ids))
            )
        }
        if ids
        else {}
    )
    found: dict[str, Media | None] = {}
    for doc in docs:
        object_id = wanted[doc.document_id]
        if object_id is None:
            found[doc.document_id] = None
        elif object_id in objects:
            blob = source_blob(objects[object_id], doc)
            found[doc.document_id] = Media(str(blob["properties"]["key"]), _extension(blob)) if blob else None
    return found


def _extension(blob: dict[str, Any]) -> str:
    """The member's extension: the file name's, else the MIME type's, else bin. Never `json`, the row's."""
    details = blob.get("details") or {}
    suffix = PurePosixPath(str(details.get("filename") or "")).suffix
    if not suffix and details.get("mime_type"):
        suffix = mimetypes.guess_extension(str(details["mime_type"])) or ""
    extension = suffix.lstrip(".").lower()
    if not _EXTENSION.match(extension):
        return "bin"
    return "src.json" if extension == "json" else extension


def fetch_media(blobs: BlobStore, media: Media, folder: Path, summary: MediaSummary) -> Path | None:
    """The file copied to `folder`, or None with the reason counted in `summary`."""
    target = folder / f"media-{secrets.token_hex(8)}"
    try:
        info = blobs.head(media.key)
        if info is None:
            summary.download_failures += 1
            return None
        if info.size > MAX_MEDIA_MEMBER_BYTES:
            summary.members_skipped_too_large += 1
            return None
        with target.open("wb") as out:
            for chunk in blobs.iter_chunks(media.key):
                out.write(chunk)
        return target
    # The stores' errors share no type (OSError on disk, botocore's on S3): any failure to read
    # is this sample's failed download, counted, and the export goes on.
    except Exception:  # noqa: BLE001
        target.unlink(missing_ok=True)
        summary.download_failures += 1
        return None
