"""Many concurrent clients against one live server: uploads, confirms, batches, task polling.

    python -m bench.load [--clients 32] [--seconds 30] [--database-url postgresql+psycopg://...]

Each client thread loops over a seeded mix of operations on loopback: a presigned
upload (create, PUT, confirm), five uploads confirmed in one batch confirm, a
batch of its own confirmed objects created and submitted, and task polls. It
records every response's status and latency. Writes bench/results/load.json as
flat key -> number: requests/s over the run and p50/p99 latency (ms) per
operation. `tests/reliability/test_load.py` runs the same load, smaller, and
counts rows. Self-contained: it starts its own server on a free port.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

KEY = "sk_bench_load_key_0123456789abcdef"
RESULTS = Path(__file__).parent / "results" / "load.json"
SCHEMA = {"properties": {"content": {"type": "text"}}}


@dataclass
class LoadRecord:
    """What all clients saw. Appends from many threads: list.append is atomic in CPython."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)  # any non-2xx, with what was asked
    confirmed: list[str] = field(default_factory=list)  # object ids from single confirms
    confirm_tasks: list[str] = field(default_factory=list)  # batch confirm tasks
    batches: list[tuple[str, str, list[str]]] = field(default_factory=list)  # batch id, task id, object ids
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def figures(self) -> dict[str, float]:
        """Flat key -> number: totals, requests/s, and p50/p99 ms per operation."""
        out: dict[str, float] = {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "failures": len(self.failures),
        }
        for op, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            out[f"{op}_count"] = len(ordered)
            out[f"{op}_p50_ms"] = round(ordered[len(ordered) // 2] * 1000, 2)
            out[f"{op}_p99_ms"] = round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2)
        return out


def setup(url: str) -> None:
    """Namespace 'main', text bucket 'docs' and a cheap sentence collection reading it."""
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {KEY}"}) as client:
        assert client.post("/v1/namespaces", json={"namespace_name": "main"}).status_code == 200
        client.headers["X-Namespace"] = "main"
        bucket = client.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": SCHEMA}).json()
        collection = client.post(
            "/v1/collections",
            json={
                "collection_name": "lines",
                "source": {"type": "bucket", "bucket_ids": [bucket["bucket_id"]]},
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": "content"},
                    "parameters": {
                        "extractor_type": "text_extractor",
                        "split_by": "sentences",
                        "chunk_size": 1,
                        "model": "wordllama",
                    },
                },
            },
        )
        assert collection.status_code == 200, collection.text


class LoadClient:
    def __init__(self, url: str, record: LoadRecord, seed: int) -> None:
        self.http = httpx.Client(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {KEY}", "X-Namespace": "main"}
        )
        self.record, self.rng, self.seed, self.n = record, random.Random(seed), seed, 0
        self.unbatched: list[str] = []  # objects this client confirmed and has not batched yet

    def call(self, op: str, method: str, url: str, **kwargs: object) -> httpx.Response | None:
        started = time.perf_counter()
        response = self.http.request(method, url, **kwargs)  # type: ignore[arg-type]
        self.record.latencies[op].append(time.perf_counter() - started)
        if response.is_success:
            return response
        self.record.failures.append(f"{op} {method} {url}: {response.status_code} {response.text[:200]}")
        return None

    def _content(self) -> bytes:
        self.n += 1
        return f"Load object {self.seed}-{self.n} says hello.".encode()

    def upload_single(self) -> None:
        data = self._content()
        created = self.call(
            "create_upload",
            "POST",
            "/v1/buckets/docs/uploads",
            json={"filename": f"{self.seed}-{self.n}.txt", "content_type": "text/plain", "blob_property": "content"},
        )
        if (
            created is None
            or self.call(
                "put", "PUT", created.json()["presigned_url"], content=data, headers={"Content-Type": "text/plain"}
            )
            is None
        ):
            return
        done = self.call("confirm", "POST", f"/v1/buckets/docs/uploads/{created.json()['upload_id']}/confirm", json={})
        if done is not None:
            self.record.confirmed.append(done.json()["object_id"])
            self.unbatched.append(done.json()["object_id"])

    def upload_batch(self) -> None:
        files = [(self._content(), f"{self.seed}-{self.n}.txt") for _ in range(5)]
        created = self.call(
            "create_uploads_batch",
            "POST",
            "/v1/buckets/docs/uploads/batch",
            json={
                "uploads": [
                    {"filename": name, "content_type": "text/plain", "blob_property": "content"} for _, name in files
                ]
            },
        )
        if created is None:
            return
        uploads = created.json()["uploads"]
        for (data, _), upload in zip(files, uploads, strict=True):
            if (
                self.call("put", "PUT", upload["presigned_url"], content=data, headers={"Content-Type": "text/plain"})
                is None
            ):
                return
        done = self.call(
            "confirm_batch",
            "POST",
            "/v1/buckets/docs/uploads/confirm/batch",
            json={"confirmations": [{"upload_id": u["upload_id"]} for u in uploads]},
        )
        if done is not None:
            self.record.confirm_tasks.append(done.json()["task_id"])

    def submit_batch(self) -> None:
        objects, self.unbatched = self.unbatched[:3], self.unbatched[3:]
        batch = self.call("create_batch", "POST", "/v1/buckets/docs/batches", json={"object_ids": objects})
        if batch is None:
            return
        task = self.call("submit", "POST", f"/v1/buckets/docs/batches/{batch.json()['batch_id']}/submit", json={})
        if task is not None:
            self.record.batches.append((batch.json()["batch_id"], task.json()["task_id"], objects))

    def poll(self) -> None:
        known = self.record.confirm_tasks + [t for _, t, _ in self.record.batches[-20:]]
        if known:
            self.call("poll_task", "GET", f"/v1/tasks/{self.rng.choice(known)}")
        else:  # nothing to poll yet: do real work rather than spin
            self.upload_single()

    def run(self, until: float) -> None:
        with self.http:
            while time.monotonic() < until:
                roll = self.rng.random()
                if roll < 0.35:
                    self.upload_single()
                elif roll < 0.45:
                    self.upload_batch()
                elif roll < 0.55 and self.unbatched:
                    self.submit_batch()
                else:
                    self.poll()


def run_load(url: str, clients: int, seconds: float, seed: int = 1) -> LoadRecord:
    """Drive `clients` threads against `url` for `seconds`; the server must already be set up."""
    record = LoadRecord()
    # Clients are built before the clock starts: on a busy machine 32 HTTP clients take seconds to build.
    loaders = [LoadClient(url, record, seed * 1000 + i) for i in range(clients)]
    started = time.monotonic()
    threads = [threading.Thread(target=loader.run, args=(started + seconds,)) for loader in loaders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record.seconds = time.monotonic() - started
    return record


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--database-url", default="", help="empty: the embedded SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        port = _free_port()
        env = {
            **os.environ,
            "STRATAFLOW_API_KEY": KEY,
            "STRATAFLOW_DATABASE_URL": args.database_url,
            "STRATAFLOW_ENGINE_THREADS": "1",
            "STRATAFLOW_TASK_POLL_INTERVAL_S": "0.2",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "strataflow", "serve", "--port", str(port), "--data-dir", f"{work}/data"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{url}/v1/health/liveness", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline and server.poll() is None, "server did not start"
                    time.sleep(0.2)
            setup(url)
            record = run_load(url, args.clients, args.seconds)
        finally:
            server.terminate()
            server.wait(60)
    figures = {"clients": args.clients, **record.figures()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:32} {value}")
    for failure in record.failures[:10]:
        print("failure:", failure)


if __name__ == "__main__":
    main()
