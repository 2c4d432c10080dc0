"""Real HTTP servers on loopback for the outbound-fetch tests: files, redirects, drips and gates.

Each listens on both IPv4 and IPv6 loopback (one dual-stack socket), counts the requests it
got, and tracks how many it is answering at once.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

BODY = b"secret bytes from an internal service\n"


@dataclass
class Behaviour:
    """What the server does; tests change it between requests."""

    drip_bytes: int = 0  # >0: send this many bytes one at a time, each after `drip_pause_s`
    drip_pause_s: float = 0.2
    gate: threading.Event | None = None  # set: the response waits until the gate opens
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location
    sizes: dict[str, int] = field(default_factory=dict)  # path -> body of that many bytes
    chunked: bool = False  # no Content-Length (a body whose size is known only at its end)
    drip_until: threading.Event | None = None  # set: send a byte every `drip_pause_s` until it is set


class _Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # ::1 and 127.0.0.1 alike
        super().server_bind()


class LoopbackServer:
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.requests: list[str] = []
        self.host_headers: list[str] = []
        self.active = 0
        self.max_active = 0
        self.finished = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.host_headers.append(self.headers.get("Host", ""))
                owner._enter(self.path)
                try:
                    owner._answer(self)
                except OSError:
                    pass  # the client hung up (a deadline or a size cap): that is the point
                finally:
                    owner._leave()

        self._server = _Server(("::", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _enter(self, path: str) -> None:
        with self._changed:
            self.requests.append(path)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self._changed.notify_all()

    def _leave(self) -> None:
        with self._changed:
            self.active -= 1
            self.finished += 1
            self._changed.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> None:
        """Wait until `predicate(self)` holds (a generous bound: a hung test fails, never a slow one)."""
        with self._changed:
            assert self._changed.wait_for(lambda: predicate(self), timeout), "the server never got there"

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        b = self.behaviour
        path = handler.path.split("?", 1)[0]
        if b.gate is not None:
            b.gate.wait()
        if path in b.redirects:
            handler.send_response(302)
            handler.send_header("Location", b.redirects[path])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if path == "/missing":
            handler.send_error(404)
            return
        if b.drip_until is not None:
            self._drip_until(handler, b.drip_until, b.drip_pause_s)
            return
        body = b"x" * b.sizes[path] if path in b.sizes else BODY
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        if b.chunked:
            handler.send_header("Connection", "close")
        else:
            handler.send_header("Content-Length", str(b.drip_bytes or len(body)))
        handler.end_headers()
        if b.drip_bytes:
            for _ in range(b.drip_bytes):
                handler.wfile.write(b"d")
                handler.wfile.flush()
                time.sleep(b.drip_pause_s)
            return
        handler.wfile.write(body)
        if b.chunked:
            handler.close_connection = True

    @staticmethod
    def _drip_until(handler: http.server.BaseHTTPRequestHandler, until: threading.Event, pause: float) -> None:
        """An answer of unknown length that keeps coming until the test says it is done."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        while not until.wait(pause):
            handler.wfile.write(b"d")
            handler.wfile.flush()
        handler.wfile.write(b"end\n")

    def close(self) -> None:
        if self.behaviour.drip_until is not None:
            self.behaviour.drip_until.set()
        if self.behaviour.gate is not None:
            self.behaviour.gate.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def loopback_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    try:
        yield server
    finally:
        server.close()
