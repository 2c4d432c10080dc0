"""How a stored blob is handed to a browser: always as data, never as a page of our origin.

A tenant can store any bytes (an `evil.html`, an `evil.svg` with a script). Served
from the same origin as `/console`, which keeps the admin key in the tab, such a
file would run as our page. So every blob download carries `nosniff` (the browser
keeps the declared type), `Content-Security-Policy: sandbox` (a document opened
anyway gets a unique origin, no scripts, no forms) and, unless its type is a
passive medium a browser only displays, `Content-Disposition: attachment`.
"""

from __future__ import annotations

import mimetypes
from urllib.parse import quote

# Types a browser renders without running anything of the file's own. Everything else
# (html, svg, xml, javascript, pdf, octet-stream, unknown) is downloaded, not opened.
PASSIVE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/tiff",
        "text/plain",
        "text/csv",
    }
)
PASSIVE_FAMILIES = ("audio/", "video/")


def media_type_of(key: str) -> str:
    return mimetypes.guess_type(key.rsplit("/", 1)[-1])[0] or "application/octet-stream"


def is_passive(media_type: str) -> bool:
    bare = media_type.split(";", 1)[0].strip().lower()
    return bare in PASSIVE_TYPES or bare.startswith(PASSIVE_FAMILIES)


def attachment(key: str) -> str:
    """`Content-Disposition: attachment` naming the key's last part (ASCII fallback plus RFC 5987)."""
    name = key.rsplit("/", 1)[-1] or "download"
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def download_headers(key: str, media_type: str) -> dict[str, str]:
    """Headers for serving the blob at `key` as `media_type`."""
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
    if not is_passive(media_type):
        headers["Content-Disposition"] = attachment(key)
    return headers
