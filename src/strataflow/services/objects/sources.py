"""Turn a blob given inline (text, base64, data: URI, http(s) URL) into stored bytes."""

from __future__ import annotations

import base64
import binascii
import io
import mimetypes
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

from strataflow.blobs import BlobStore
from strataflow.errors import BadRequestError, PayloadTooLargeError
from strataflow.ids import new_id
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
class SourceLimits:
    max_bytes: int
    fetch_timeout_s: float


def _decode_base64(text: str, prop: str) -> bytes:
    try:
        return base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(
            f"Blob '{prop}': data is neither a URL nor valid base64", {"field": f"blobs.{prop}.data"}
        ) from None


def _fetch(url: str, prop: str, limits: SourceLimits) -> tuple[bytes, str | None, str | None]:
    """Download a URL with a size cap. Returns bytes, content type and filename."""
    try:
        with httpx.stream("GET", url, timeout=limits.fetch_timeout_s, follow_redirects=True) as response:
            if response.status_code >= 400:
                raise BadRequestError(
                    f"Blob '{prop}': fetching {url} answered HTTP {response.status_code}",
                    {"field": f"blobs.{prop}.data", "url": url},
                )
            buffer = io.BytesIO()
            for chunk in response.iter_bytes():
                buffer.write(chunk)
                if buffer.tell() > limits.max_bytes:
                    raise PayloadTooLargeError(f"Blob '{prop}': {url} exceeds {limits.max_bytes} bytes")
            content_type = response.headers.get("content-type", "").split(";")[0].strip() or None
    except httpx.HTTPError as exc:
        raise BadRequestError(
            f"Blob '{prop}': could not fetch {url}: {exc}", {"field": f"blobs.{prop}.data", "url": url}
        ) from None
    filename = unquote(urlparse(url).path.rsplit("/", 1)[-1]) or None
    return buffer.getvalue(), content_type, filename


def _bytes_for(blob: CreateBlobRequest, kind: FieldType, limits: SourceLimits) -> tuple[bytes, str, str | None, str | None]:
    """Bytes, mime type, filename and source URL of a file-typed blob."""
    data, prop = blob.data, blob.property
    if not isinstance(data, str):
        raise BadRequestError(f"Blob '{prop}' of type {kind.value} needs string data", {"field": f"blobs.{prop}.data"})
    mime = blob.content_type or _DEFAULT_MIME[kind]
    if data.startswith(("http://", "https://")):
        content, fetched_type, filename = _fetch(data, prop, limits)
        return content, blob.content_type or fetched_type or mime, blob.filename or filename, data
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
    limits: SourceLimits,
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
    content, mime, filename, source_url = _bytes_for(blob, kind, limits)
    if len(content) > limits.max_bytes:
        raise PayloadTooLargeError(f"Blob '{prop}' exceeds {limits.max_bytes} bytes; use a presigned upload")
    filename = filename or f"{prop}{mimetypes.guess_extension(mime) or ''}"
    key = f"{key_root}/{blob_id}"
    written = store.put_bytes(key, content, mime)
    stored.written_keys.append(key)
    record["properties"].update({"url": store.uri(key), "key": key})
    if source_url:
        record["properties"]["source_url"] = source_url
    record["details"] = {"filename": filename, "size_bytes": written.size, "mime_type": mime, "hash": written.sha256}
    stored.records.append(record)
