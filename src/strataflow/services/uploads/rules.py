"""What makes an upload request acceptable: filename, content type, blob type, schema fit.

Pure functions, no I/O: everything here is checked before a URL is minted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from strataflow.errors import BadRequestError
from strataflow.services.buckets.mime import content_fits, derive_blob_type
from strataflow.services.buckets.schema import FILE_TYPES, FieldType, check_metadata, check_required

_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*(\s*;\s*[ -~]+)?$")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._\-=+@ ()\[\],]")
_STEM_OK = re.compile(r"^[A-Za-z0-9_]+$")


def check_filename(filename: str) -> None:
    """A bare file name: no directories, no traversal, no control characters."""
    problem = None
    if "/" in filename or "\\" in filename:
        problem = "must be a file name without '/' or '\\'"
    elif filename in (".", ".."):
        problem = "must name a file, not a directory"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in filename):
        problem = "must not contain control characters"
    elif filename.strip() != filename or not filename.strip():
        problem = "must not start or end with white space"
    if problem:
        raise BadRequestError(f"Invalid filename {filename!r}: {problem}", {"field": "filename"})


def key_safe_filename(filename: str) -> str:
    """The filename as used in a storage key: characters storage keys refuse become '_'."""
    return _KEY_UNSAFE.sub("_", filename)


# Where an upload's bytes go: {org internal id}/{namespace}/{this marker}/{upload id}/{filename}.
# Stored keys follow it, so it never changes (it happens to spell the upload task type).
UPLOADS_KEY_MARKER = "api_buckets_uploads_create"


def upload_key(internal_id: str, namespace_id: str, upload_id: str, filename: str) -> str:
    return f"{internal_id}/{namespace_id}/{UPLOADS_KEY_MARKER}/{upload_id}/{key_safe_filename(filename)}"


def upload_id_in_key(key: str) -> str | None:
    """The upload a storage key belongs to, or None for keys outside the uploads layout."""
    parts = key.split("/")
    return parts[3] if len(parts) >= 5 and parts[2] == UPLOADS_KEY_MARKER else None


def check_content_type(content_type: str) -> None:
    if not _MIME.match(content_type):
        raise BadRequestError(
            f"Invalid content_type {content_type!r}: expected a MIME type such as 'image/png'",
            {"field": "content_type"},
        )


def parse_blob_type(value: str) -> FieldType:
    try:
        kind = FieldType(value.strip().lower())
    except ValueError:
        kind = None
    if kind not in FILE_TYPES:
        raise BadRequestError(
            f"blob_type {value!r} is not a file type",
            {"field": "blob_type", "allowed_types": sorted(t.value for t in FILE_TYPES)},
        )
    assert kind is not None
    return kind


def default_blob_property(filename: str) -> str | None:
    stem = filename.rsplit(".", 1)[0] if "." in filename[1:] else filename
    return stem if _STEM_OK.match(stem) and len(stem) <= 100 else None


@dataclass(frozen=True)
class BlobTarget:
    """Where an upload's bytes go in an object: the property and its type."""

    blob_property: str | None
    blob_type: FieldType | None


def resolve_blob_target(
    schema: dict[str, Any],
    filename: str,
    content_type: str,
    blob_property: str | None,
    blob_type: str | None,
    create_object: bool,
    object_metadata: dict[str, Any] | None,
) -> BlobTarget:
    """Check the upload against the bucket schema now, so confirm cannot fail on it later."""
    prop = blob_property or default_blob_property(filename)
    kind = parse_blob_type(blob_type) if blob_type else derive_blob_type(content_type)
    if create_object:
        properties = schema.get("properties", {})
        if prop is None or prop not in properties:
            raise BadRequestError(
                f"blob_property {prop!r} is not a property of the bucket schema",
                {"field": "blob_property", "schema_properties": sorted(properties)},
            )
        expected = FieldType(properties[prop]["type"])
        if expected not in FILE_TYPES:
            raise BadRequestError(
                f"Schema property '{prop}' has type {expected.value}, which holds no file",
                {"field": "blob_property", "schema_type": expected.value},
            )
        if blob_type and kind is not expected:  # a derived type gives way to the schema's
            raise BadRequestError(
                f"blob_type {kind.value} does not match the schema type {expected.value} of '{prop}'",
                {"field": "blob_type", "expected_type": expected.value},
            )
        kind = expected
        metadata = object_metadata or {}
        check_metadata(schema, metadata)
        check_required(schema, {prop} | set(metadata))
    if kind is not None and not content_fits(kind, content_type):
        raise BadRequestError(
            f"content_type {content_type!r} cannot hold a {kind.value} blob",
            {"field": "content_type", "blob_type": kind.value},
        )
    return BlobTarget(blob_property=prop, blob_type=kind)
