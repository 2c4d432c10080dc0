"""Webhook delivery: events/s and commit-to-delivery delay, against a plain HTTP POST loop.

    python bench/events.py [--backlog 300] [--paced 100]

  receiver   an in-process ThreadingHTTPServer on loopback answering 200 at once; it notes when
             each request arrived (the same clock the server stamps events with)
  baseline   a plain POST loop: one httpx client (keep-alive, in a process of its own) sending
             the same-sized JSON bodies to the same receiver, one after another: posts/s and
             per-request latency p50/p99. The dispatcher opens a pinned connection per delivery
             (outbound.py checks every target) and signs each body.
  drain      a server with its dispatcher off records `--backlog` object.created events (each
             object's own transaction holds its event and delivery); it is restarted with the
             dispatcher on, and the backlog is delivered: events/s from the restart to the last
             arrival (signed, two dispatch threads: the defaults)
  paced      with the dispatcher on, objects are created one at a time; for each event, the delay
             from the event's commit (created_at) to its arrival at the receiver: p50/p99

Writes bench/results/events.json.
"""

from __future__ import annotations

import argparse
import http.server
import json
import multiprocessing
import shutil
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from figures import Figure, print_figures, write_results
from live_server import API_KEY, Server


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once: no delayed-ACK stall per answer

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = {}
                with owner.lock:
                    owner.arrivals.append((now, parsed))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.arrivals)} of {count} deliveries arrived")
            time.sleep(0.01)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _post_loop(url: str, body: bytes, count: int) -> tuple[float, list[float]]:
    """Runs in a process of its own, as the server's dispatcher does: the receiver's process is not its."""
    latencies = []
    with httpx.Client() as client:
        began = time.perf_counter()
        for _ in range(count):
            started = time.perf_counter()
            client.post(url, content=body, headers={"Content-Type": "application/json"}).raise_for_status()
            latencies.append(time.perf_counter() - started)
        took = time.perf_counter() - began
    return count / took, latencies


def plain_post_loop(receiver: Receiver, body: bytes, count: int) -> tuple[float, list[float]]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        rate, latencies = pool.apply(_post_loop, (receiver.url, body, count))
    with receiver.lock:
        receiver.arrivals.clear()
    return rate, latencies


def _client(server: Server, setup: bool) -> httpx.Client:
    client = httpx.Client(
        base_url=server.url, timeout=120, headers={"Authorization": f"Bearer {API_KEY}", "X-Namespace": "bench"}
    )
    if setup:
        client.post("/v1/namespaces", json={"namespace_name": "bench", "feature_extractors": []}).raise_for_status()
        schema = {"properties": {"note": {"type": "text"}, "title": {"type": "string"}}}
        client.post("/v1/buckets", json={"bucket_name": "bench", "bucket_schema": schema}).raise_for_status()
    return client


def _objects(client: httpx.Client, count: int, pause_s: float = 0.0) -> None:
    for n in range(count):
        body = {"blobs": [{"property": "note", "type": "text", "data": f"note {n}"}], "metadata": {"title": f"t{n}"}}
        client.post("/v1/buckets/bench/objects", json=body).raise_for_status()
        if pause_s:
            time.sleep(pause_s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=300)
    parser.add_argument("--paced", type=int, default=100)
    args = parser.parse_args()
    receiver = Receiver()
    work = Path(tempfile.mkdtemp(prefix="bench-events-"))
    data = work / "data"
    env = {
        "STRATAFLOW_OUTBOUND_ALLOW": receiver.url.split("/")[2],
        "STRATAFLOW_EVENTS_POLL_INTERVAL_S": "0.2",
    }
    try:
        server = Server(data, {**env, "STRATAFLOW_EVENTS_DISPATCHER": "false"})
        client = _client(server, setup=True)
        hook = {
            "webhook_name": "bench",
            "event_types": ["object.created"],
            "channels": [{"channel": "webhook", "configs": {"url": receiver.url, "signing_secret": "bench-secret"}}],
        }
        client.post("/v1/organizations/webhooks", json=hook).raise_for_status()
        _objects(client, args.backlog)
        sample = client.get("/v1/events", params={"limit": 1}).json()["results"][0]
        client.close()
        server.stop()
        body = json.dumps(sample).encode()  # the size of one delivery
        posts_per_s, post_latencies = plain_post_loop(receiver, body, args.backlog)

        began = time.time()
        server = Server(data, env)
        ready = time.time()
        receiver.wait(args.backlog)
        drained = receiver.arrivals[-1][0]
        drain_rate = args.backlog / (drained - ready)
        with receiver.lock:
            receiver.arrivals.clear()

        client = _client(server, setup=False)
        _objects(client, args.paced, pause_s=0.02)
        client.close()
        receiver.wait(args.paced)
        server.stop()
        delays = [
            arrived - datetime.fromisoformat(event["created_at"]).timestamp() for arrived, event in receiver.arrivals
        ]
    finally:
        receiver.server.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    figures = [
        Figure(
            "drain_events_per_s",
            f"backlog of {args.backlog} signed webhook deliveries drained after a restart",
            round(drain_rate, 1),
            "events/s",
            "higher",
            round(posts_per_s, 1),
            "plain sequential HTTP POST loop (httpx) to the same receiver",
        ),
        Figure(
            "commit_to_delivery_p50_ms",
            "delay from an event's commit to its arrival at the receiver, p50",
            round(statistics.median(delays) * 1000, 2),
            "ms",
            "lower",
            round(statistics.median(post_latencies) * 1000, 2),
            "one plain HTTP POST round trip, p50",
        ),
        Figure(
            "commit_to_delivery_p99_ms",
            "delay from an event's commit to its arrival at the receiver, p99",
            round(_percentile(delays, 0.99) * 1000, 2),
            "ms",
            "lower",
            round(_percentile(post_latencies, 0.99) * 1000, 2),
            "one plain HTTP POST round trip, p99",
        ),
    ]
    print_figures(figures)
    write_results(
        "events",
        figures,
        {"backlog": args.backlog, "paced": args.paced, "server_start_s": round(ready - began, 2)},
    )


if __name__ == "__main__":
    main()
