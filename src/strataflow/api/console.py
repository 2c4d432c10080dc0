"""The web console's static files, served with a strict Content-Security-Policy of their own.

The console keeps the admin key in the tab's storage, so nothing but its own script
may run on its pages: scripts and styles from the console only, no inline code, no
plugins, no framing. Pictures, media and text previews may come from where blobs
are served (this server, or the S3 endpoint the presigned URLs point at).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from strataflow.config import Settings

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def blob_origins(settings: Settings) -> list[str]:
    """Where presigned blob URLs point, besides this origin."""
    if settings.blob_url and settings.blob_url.startswith("s3://"):
        if not settings.s3_endpoint_url:
            return ["https://*.amazonaws.com"]
        parts = urlsplit(settings.s3_endpoint_url)
        return [_origin(settings.s3_endpoint_url), f"{parts.scheme}://*.{parts.netloc}"]  # path or host style
    return [_origin(settings.base_url)]


def console_policy(settings: Settings) -> str:
    blobs = " ".join(blob_origins(settings))
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: {blobs}",
            f"media-src 'self' {blobs}",
            f"connect-src 'self' {blobs}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )


class ConsoleFiles(StaticFiles):
    def __init__(self, settings: Settings) -> None:
        super().__init__(directory=CONSOLE_DIR, html=True)
        self.headers = {
            "Content-Security-Policy": console_policy(settings),
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
        }

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(self.headers)
        return response
