"""Turn a blob given inline (text, base64, data: URI, http(s) URL) into stored bytes.

Nothing here touches the database: callers fetch and store first, then open their session."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from strataflow.blobs import BlobStore
from strataflow.errors import BadRequestError, PayloadTooLargeError
from strataflow.ids import new_id
from strataflow.outbound import Fetched, FetchFailed, OutboundClient
from strataflow.schemas.objects import CreateBlobRequest
from strataflow.services.buckets.schema import FILE_TYPES, FieldType, check_value, parse_type

_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+\-/]*)?(?P<params>(;[^,;]*)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL)
_DEFAULT_MIME = {
    FieldType.TEXT: "text/plain",
    FieldType.IMAGE: "image/octet-stream",
    FieldType.VIDEO: "video/octet-stream",
    FieldType.AUDIO: "audio/octet-stream",
    FieldType.PDF: "application/pdf",
    FieldType.EXCEL: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass
class StoredBlobs:
    """Blob records made for one object, and the keys written (to undo on failure)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    written_keys: list[str] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        return sum(int(r["details"].get("size_bytes") or 0) for r in self.records)

    def undo(self, store: BlobStore) -> None:
        for key in self.written_keys:
            store.delete(key)


@dataclass(frozen=True)
class BlobSources:
    """Where inline blob bytes may come from: at most `max_bytes`, URLs only through `outbound`."""

    max_bytes: int
    outbound: OutboundClient

    @property
    def fetch_limit(self) -> int:
        return min(self.max_bytes, self.outbound.policy.max_bytes)


def _decode_base64(text: str, prop: str) -> bytes:
    try:
        return base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(
            f"Blob '{prop}': data is neither a URL nor valid base64", {"field": f"blobs.{prop}.data"}
        ) from None


def is_whole_url(data: str) -> bool:
    """True when the whole value is one http(s) URL: text that merely starts with one is text."""
    if not data.startswith(("http://", "https://")) or any(c.isspace() for c in data):
        return False
    try:
        parts = urlsplit(data)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _fetch(url: str, prop: str, sources: BlobSources) -> Fetched:
    """Download a URL through the outbound guard. Every failure is the same 400, so a caller
    cannot tell a refused address from a closed port, a silent one or an error answer."""
    try:
        return sources.outbound.get(url, sources.fetch_limit)
    except FetchFailed:
        raise BadRequestError(
            f"Blob '{prop}': could not fetch {url}: the address is not allowed, or it did not answer "
            f"with a file within {sources.outbound.policy.deadline_s:g} s and {sources.fetch_limit} bytes",
            {"field": f"blobs.{prop}.data", "url": url},
        ) from None


def _bytes_for(
    blob: CreateBlobRequest, kind: FieldType, sources: BlobSources
) -> tuple[bytes, str, str | None, str | None]:
    """Bytes, mime type, filename and source URL of a file-typed blob."""
    data, prop = blob.data, blob.property
    if not isinstance(data, str):
        raise BadRequestError(f"Blob '{prop}' of type {kind.value} needs string data", {"field": f"blobs.{prop}.data"})
    mime = blob.content_type or _DEFAULT_MIME[kind]
    if is_whole_url(data):
        fetched = _fetch(data, prop, sources)
        return (
            fetched.content,
            blob.content_type or fetched.content_type or mime,
            blob.filename or fetched.filename,
            data,
        )
    if match := _DATA_URI.match(data):
        payload = match.group("data")
        content = _decode_base64(payload, prop) if match.group("b64") else unquote(payload).encode()
        return content, blob.content_type or match.group("mime") or mime, blob.filename, None
    if kind is FieldType.TEXT:
        return data.encode("utf-8"), mime if mime.startswith("text/") else "text/plain", blob.filename, None
    return _decode_base64(data, prop), mime, blob.filename, None


def store_blob(
    store: BlobStore,
    schema: dict[str, Any],
    key_root: str,
    blob: CreateBlobRequest,
    sources: BlobSources,
    stored: StoredBlobs,
) -> None:
    """Validate one blob against the schema, write its bytes, and record it in `stored`."""
    prop = blob.property
    field_def = schema.get("properties", {}).get(prop)
    if field_def is None:
        raise BadRequestError(
            f"Blob property '{prop}' is not in the bucket schema",
            {"field": f"blobs.{prop}", "schema_properties": sorted(schema.get("properties", {}))},
        )
    kind = parse_type(blob.type, f"blobs.{prop}.type")
    expected = FieldType(field_def["type"])
    if kind is not expected:
        raise BadRequestError(
            f"Blob '{prop}' has type {kind.value} but the schema says {expected.value}",
            {"field": f"blobs.{prop}.type", "expected_type": expected.value},
        )
    blob_id = new_id("blob")
    record: dict[str, Any] = {
        "blob_id": blob_id,
        "property": prop,
        "key_prefix": blob.key_prefix,
        "type": kind.value,
        "properties": dict(blob.metadata or {}),
        "details": {"filename": blob.filename, "size_bytes": None, "mime_type": None, "hash": None},
    }
    if kind not in FILE_TYPES:
        check_value(schema, prop, blob.data)
        record["properties"]["value"] = blob.data
        stored.records.append(record)
        return
    content, mime, filename, source_url = _bytes_for(blob, kind, sources)
    if len(content) > sources.max_bytes:
        raise PayloadTooLargeError(f"Blob '{prop}' exceeds {sources.max_bytes} bytes; use a presigned upload")
    filename = filename or f"{prop}{mimetypes.guess_extension(mime) or ''}"
    key = f"{key_root}/{blob_id}"
    written = store.put_bytes(key, content, mime)
    stored.written_keys.append(key)
    record["properties"].update({"url": store.uri(key), "key": key})
    if source_url:
        record["properties"]["source_url"] = source_url
    record["details"] = {"filename": filename, "size_bytes": written.size, "mime_type": mime, "hash": written.sha256}
    stored.records.append(record)
