"""The HTTP protocol `strataflow serve` runs: request bodies reach the app whole, in order, uncopied.

A real uvicorn server on loopback with a bare ASGI app that keeps every piece it
receives; clients write raw bytes to a socket, so how the pieces arrive is the
kernel's and the parser's doing, as in production.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from strataflow.api.http_protocol import PassThroughBodyProtocol
from strataflow.cli.admin import _http_stack
from tests.live import free_port

MiB = 1 << 20


@dataclass
class Seen:
    """What the app and the parser saw: the parser's pieces are kept, so no id is reused."""

    parsed: list[bytes] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)


def _recording(protocol: type[HttpToolsProtocol], seen: Seen) -> type[HttpToolsProtocol]:
    class Recording(protocol):  # type: ignore[misc, valid-type]
        def on_body(self, body: bytes) -> None:
            seen.parsed.append(body)
            super().on_body(body)

    return Recording


async def _app(scope: dict[str, Any], receive: Any, send: Any, seen: Seen) -> None:
    if scope["type"] != "http":
        return
    digest, size = hashlib.sha256(), 0
    while True:
        message = await receive()
        body = message.get("body", b"")
        assert type(body) is bytes  # ASGI: a body is bytes
        seen.received.append(body)
        digest.update(body)
        size += len(body)
        if not message.get("more_body"):
            break
    headers = [(b"x-sha256", digest.hexdigest().encode()), (b"x-size", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _serve(protocol: type[HttpToolsProtocol], seen: Seen) -> Iterator[int]:
    port = free_port()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _app(scope, receive, send, seen)

    config = uvicorn.Config(app, port=port, http=_recording(protocol, seen), loop="uvloop", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def port(seen: Seen) -> Iterator[int]:
    yield from _serve(PassThroughBodyProtocol, seen)


def _request(sock: socket.socket, body: bytes, pieces: int = 1, pause_s: float = 0.0) -> dict[str, str]:
    sock.sendall(f"PUT /blob HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    step = max(1, -(-len(body) // pieces))
    for start in range(0, len(body), step):
        sock.sendall(body[start : start + step])
        time.sleep(pause_s)
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    assert response.status == 200
    return {k.lower(): v for k, v in response.getheaders()}


def _payload(size: int, seed: bytes) -> bytes:
    return hashlib.shake_256(seed).digest(size)


def test_a_large_body_arrives_whole_and_in_order(port: int, seen: Seen) -> None:
    body = _payload(24 * MiB, b"large")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        answer = _request(sock, body)
    assert (answer["x-size"], answer["x-sha256"]) == (str(len(body)), hashlib.sha256(body).hexdigest())
    assert len(seen.received) > 1  # it did come in pieces


def test_the_app_gets_the_parsers_own_pieces_not_copies(port: int, seen: Seen) -> None:
    body = _payload(16 * MiB, b"uncopied")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        _request(sock, body)
    parsed = {id(piece) for piece in seen.parsed}
    passed = [piece for piece in seen.received if id(piece) in parsed]
    # Most pieces pass untouched; a piece that found another still waiting is joined to it.
    assert sum(len(piece) for piece in passed) > len(body) // 2


def test_uvicorns_own_protocol_copies_every_piece(seen: Seen) -> None:
    # The baseline the pass-through is measured against: were this ever to pass untouched in
    # uvicorn itself, the subclass would be redundant.
    body = _payload(4 * MiB, b"copied")
    for port in _serve(HttpToolsProtocol, seen):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            _request(sock, body)
    parsed = {id(piece) for piece in seen.parsed}
    assert not [piece for piece in seen.received if piece and id(piece) in parsed]


def test_small_slow_pieces_and_keep_alive(port: int, seen: Seen) -> None:
    # Pieces that arrive while the app has not yet taken the last one are joined (uvicorn's
    # path); two requests on one connection each get their own body.
    first, second = _payload(300_000, b"first"), _payload(5_000, b"second")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        one = _request(sock, first, pieces=60, pause_s=0.001)
        two = _request(sock, second, pieces=5)
        empty = _request(sock, b"")
    assert one["x-sha256"] == hashlib.sha256(first).hexdigest()
    assert two["x-sha256"] == hashlib.sha256(second).hexdigest()
    assert (empty["x-size"], empty["x-sha256"]) == ("0", hashlib.sha256(b"").hexdigest())


def test_serve_runs_the_pass_through_protocol_on_uvloop() -> None:
    assert _http_stack() == (PassThroughBodyProtocol, "uvloop")
