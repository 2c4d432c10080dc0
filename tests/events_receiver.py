"""A real HTTP receiver for webhook tests: records every POST, can fail the first ones, hold
requests at a gate, and tracks how many requests for one delivery it is answering at once."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Behaviour:
    fail_first: int = 0  # answer 500 to this many requests, then 200
    always_fail: bool = False
    gate: threading.Event | None = None  # set: requests wait here before being answered
    hold_s: float = 0.0  # every answer waits this long (widens any overlap two senders could make)
    statuses: list[int] = field(default_factory=list)


class Receiver:
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.received: list[Received] = []
        self.in_flight: dict[str, int] = {}
        self.overlaps = 0  # requests that arrived while another for the same delivery was being answered
        self._lock = threading.Condition()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("X-Mixpeek-Delivery-Id") or ""
                with owner._lock:
                    owner.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                    )
                    if owner.in_flight.get(key):
                        owner.overlaps += 1
                    owner.in_flight[key] = owner.in_flight.get(key, 0) + 1
                    number = len(owner.received)
                    owner._lock.notify_all()
                    b = owner.behaviour
                try:
                    if b.gate is not None:
                        b.gate.wait(30)
                    if b.hold_s:
                        time.sleep(b.hold_s)
                    status = 500 if b.always_fail or number <= b.fail_first else 200
                    b.statuses.append(status)
                    answer = b'{"ok": true}' if status == 200 else b'{"error": "try later"}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the sender is gone (a killed server)
                finally:
                    with owner._lock:
                        owner.in_flight[key] -= 1

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver got {len(self.received)} requests, expected {count}")
                self._lock.wait(left)
            return list(self.received)

    def close(self) -> None:
        if self.behaviour.gate is not None:
            self.behaviour.gate.set()
        self.server.shutdown()
        self.server.server_close()


def verify(secret: str, received: Received, tolerance_s: int = 300) -> bool:
    """Check X-Mixpeek-Signature the way the contract tells a receiver to: t=<unix>,v1=<hex HMAC>."""
    parts = dict(p.split("=", 1) for p in received.headers["x-mixpeek-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + received.body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(parts["t"])) <= tolerance_s
    return fresh and hmac.compare_digest(expected, parts["v1"])
