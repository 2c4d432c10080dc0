"""Refuse text that no database can store: NUL characters and unpaired UTF-16 surrogates.

Valid JSON may carry both as escapes ("\\u0000", "\\ud800"). Python decodes them to
a str that PostgreSQL refuses (no NUL in text or jsonb) and that cannot even be
encoded to UTF-8 (a lone surrogate), so they surfaced deep in a service as 500s,
on SQLite too (JSON paths, UTF-8 encoding). One check at the edge gives every route
the same clear 400 and lets nothing reach a service. Raw bytes need no check: a raw
NUL or invalid UTF-8 is invalid JSON already, refused by the parser. The same holds
for `%00` in the path or query string.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strataflow.api.errors import error_body

_ESCAPE = re.compile(rb"\\u")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_PERCENT_NUL = re.compile(rb"%00")


def _bad_text(value: Any) -> str | None:
    """Where in a parsed JSON document a string holds NUL or a lone surrogate, else None."""
    stack: list[tuple[str, Any]] = [("body", value)]
    while stack:  # iterative: nesting depth is not ours to trust
        where, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or _SURROGATE.search(item):
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key or _SURROGATE.search(key):
                    return f"{where} (a key)"
                stack.append((f"{where}.{key}", child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in enumerate(item))
    return None


class TextGuard:
    """ASGI middleware. JSON bodies are buffered (the route would buffer them anyway) and
    parsed here only when they contain a \\u escape, so ordinary requests pay a byte scan."""

    def __init__(self, app: ASGIApp, exempt_prefixes: tuple[str, ...] = ("/v1/blobs/",)) -> None:
        self.app = app
        self.exempt = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        if _PERCENT_NUL.search(scope.get("raw_path") or b"") or _PERCENT_NUL.search(scope.get("query_string", b"")):
            await _reject(send, "The URL contains a NUL character (%00)")
            return
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"")
        if b"json" not in content_type.lower():
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = bytearray()
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        where = None
        if _ESCAPE.search(body):
            try:
                where = _bad_text(json.loads(body))
            except (ValueError, RecursionError):
                where = None  # not JSON: the route's own parser answers that
        if where is not None:
            await _reject(
                send,
                f"Text at {where} contains a NUL character or an unpaired UTF-16 surrogate; "
                "strings must be valid Unicode without NUL",
            )
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _reject(send: Send, message: str) -> None:
    body = json.dumps(error_body(400, message, "BadRequestError")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
