"""Kept-alive POST connections (webhook deliveries) against a real loopback server: reused for
the same checked target, every request still judged by the guard and bound by its own deadline."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from strataflow.outbound import AllowList, FetchFailed, OutboundClient, OutboundPolicy


class Counting:
    """An HTTP/1.1 server (keep-alive) that notes the client port of every POST."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        self.hold_s = 0.0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.ports.append(int(self.client_address[1]))
                if owner.hold_s:
                    time.sleep(owner.hold_s)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (its deadline)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def counting() -> Iterator[Counting]:
    server = Counting()
    yield server
    server.close()


def _client(port: int) -> OutboundClient:
    return OutboundClient(OutboundPolicy(allow=AllowList.parse(f"127.0.0.1:{port}")))


def test_kept_alive_posts_reuse_one_connection_per_target(counting: Counting) -> None:
    client = _client(counting.port)
    url = f"http://127.0.0.1:{counting.port}/hook"
    try:
        for _ in range(5):
            assert client.post(url, b"{}", {"Content-Type": "application/json"}, keep_alive=True).ok
        assert len(counting.ports) == 5 and len(set(counting.ports)) == 1
        for _ in range(3):  # without keep-alive: a connection each
            assert client.post(url, b"{}", {"Content-Type": "application/json"}).ok
        assert len(set(counting.ports[5:])) == 3
    finally:
        client.close()


def test_a_kept_connection_is_still_guarded_and_deadlined(counting: Counting) -> None:
    client = _client(counting.port)
    try:
        url = f"http://127.0.0.1:{counting.port}/hook"
        assert client.post(url, b"{}", {}, keep_alive=True).ok
        # Another spelling of the same server that the allow list does not name: refused before any byte.
        with pytest.raises(FetchFailed):
            client.post(f"http://127.0.0.2:{counting.port}/hook", b"{}", {}, keep_alive=True)
        assert len(counting.ports) == 1
        # The kept connection serves a request whose deadline is shorter than the answer takes.
        counting.hold_s = 3.0
        with pytest.raises(FetchFailed):
            client.post(url, b"{}", {}, keep_alive=True, deadline_s=0.3)
        counting.hold_s = 0.0
        assert client.post(url, b"{}", {}, keep_alive=True).ok  # a fresh connection after the broken one
    finally:
        client.close()
