"""Which MIME types fit which blob types of a bucket schema. Pure functions.

Shared by uploads (checked before a URL is minted) and objects (an upload that backs a blob).
"""

from __future__ import annotations

from strataflow.services.buckets.schema import FieldType

_TEXTUAL = {
    "application/json",
    "application/xml",
    "application/x-ndjson",
    "application/yaml",
    "application/x-yaml",
    "application/javascript",
    "application/rtf",
}
_SPREADSHEETS = {
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.spreadsheet",
    "text/csv",
}
_GENERIC_BINARY = "application/octet-stream"


def mime_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def derive_blob_type(content_type: str) -> FieldType | None:
    mime = mime_type(content_type)
    family = mime.split("/", 1)[0]
    if family in ("video", "image", "audio"):
        return FieldType(family)
    if mime == "application/pdf":
        return FieldType.PDF
    if mime in _SPREADSHEETS and mime != "text/csv":
        return FieldType.EXCEL
    if family == "text" or mime in _TEXTUAL:
        return FieldType.TEXT
    return None


def content_fits(kind: FieldType, content_type: str) -> bool:
    """Whether bytes of this MIME type can be a blob of `kind`."""
    mime = mime_type(content_type)
    family = mime.split("/", 1)[0]
    if kind in (FieldType.IMAGE, FieldType.VIDEO, FieldType.AUDIO):
        return family == kind.value or mime == _GENERIC_BINARY
    if kind is FieldType.PDF:
        return mime in ("application/pdf", _GENERIC_BINARY)
    if kind is FieldType.EXCEL:
        return mime in _SPREADSHEETS or mime == _GENERIC_BINARY
    if kind is FieldType.TEXT:
        return family == "text" or mime in _TEXTUAL
    return False
