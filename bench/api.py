"""API requests/s for task polling, against a minimal FastAPI handler under the same uvicorn settings.

    python bench/api.py [--seconds 5] [--rounds 3] [--connections 8]

  ours      `strataflow serve` (real uvicorn, embedded SQLite, scheduler running) answering
            GET /v1/tasks/{id} for a finished task, with a real API key: auth, a database
            read, the response model
  minimal   a FastAPI app with one sync handler on the same path returning the same JSON body
            as a constant, served by uvicorn.run with the same arguments `strataflow serve` uses
Both are driven by the same client: a separate process with asyncio raw sockets, N keep-alive
connections on loopback, each sending its next request as soon as the previous answer is read.
The client is much cheaper per request than either server, so the server is what is measured.
Rounds alternate ours/minimal; the median round of each is reported. Writes bench/results/api.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from figures import Figure, print_figures, write_results
from live_server import API_KEY, Server, api_client, wait_task

HERE = Path(__file__).resolve().parent


# -- the load client (runs in its own process) ---------------------------------------------------


async def _connection(host: str, port: int, request: bytes, until: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    while time.perf_counter() < until:
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        errors += not head.startswith(b"HTTP/1.1 200")
    writer.close()
    return errors


async def _drive(url: str, path: str, seconds: float, connections: int) -> dict[str, float]:
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {API_KEY}\r\nX-Namespace: bench\r\n\r\n"
    ).encode()
    warm: list[float] = []
    await asyncio.gather(
        *[_connection(host, int(port), request, time.perf_counter() + 0.5, warm) for _ in range(connections)]
    )
    latencies: list[float] = []
    started = time.perf_counter()
    errors = await asyncio.gather(
        *[_connection(host, int(port), request, started + seconds, latencies) for _ in range(connections)]
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "errors": sum(errors),
        "requests_per_s": len(ordered) / elapsed,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
    }


def run_client(url: str, path: str, seconds: float, connections: int) -> dict[str, float]:
    """Drive `url` from a fresh process, so the client never shares a GIL with anything measured."""
    done = subprocess.run(
        [sys.executable, __file__, "--client", url, path, str(seconds), str(connections)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout))


# -- the minimal server ----------------------------------------------------------------------------


def serve_minimal(port: int, body_path: str) -> None:
    import uvicorn
    from fastapi import FastAPI

    body = json.loads(Path(body_path).read_text())
    app = FastAPI()

    @app.get("/v1/tasks/{task_id}")
    def get_task(task_id: str) -> dict[str, Any]:  # sync, like ours: both pay the same thread-pool hop
        return body

    # The same arguments as `strataflow serve` (strataflow/cli/admin.py).
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


class MinimalServer:
    def __init__(self, body: dict[str, Any], work: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        (work / "body.json").write_text(json.dumps(body))
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-minimal", str(port), str(work / "body.json")], stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/v1/tasks/x", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


# -- measurement -------------------------------------------------------------------------------------


def finished_task(api: httpx.Client) -> dict[str, Any]:
    """A real task to poll: a one-upload batch confirm, waited until COMPLETED."""
    created = api.post(
        "/v1/buckets/bench/uploads/batch",
        json={"uploads": [{"filename": "n.txt", "content_type": "text/plain", "blob_property": "note"}]},
    ).json()["uploads"][0]
    put = httpx.put(created["presigned_url"], content=b"a note\n", headers={"Content-Type": "text/plain"})
    answer = api.post(
        "/v1/buckets/bench/uploads/confirm/batch",
        json={
            "confirmations": [{"upload_id": created["upload_id"], "etag": put.headers["ETag"], "file_size_bytes": 7}]
        },
    )
    return wait_task(api, answer.json()["task_id"])


def measure(seconds: float, rounds: int, connections: int, work: Path) -> dict[str, Any]:
    # The default scheduler poll interval, as a plain `strataflow serve` has it.
    ours = Server(work / "data", {"STRATAFLOW_TASK_POLL_INTERVAL_S": "1.0"})
    minimal = None
    try:
        task = finished_task(api_client(ours))
        path = f"/v1/tasks/{task['task_id']}"
        minimal = MinimalServer(task, work)
        runs: dict[str, list[dict[str, float]]] = {"ours": [], "minimal": []}
        for _ in range(rounds):
            runs["ours"].append(run_client(ours.url, path, seconds, connections))
            runs["minimal"].append(run_client(minimal.url, path, seconds, connections))
    finally:
        ours.stop()
        if minimal is not None:
            minimal.stop()
    median = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in runs.items()}
    return {
        "connections": connections,
        "seconds_per_round": seconds,
        "rounds": runs,
        "median": median,
        "response_bytes": len(json.dumps(task)),
    }


def figures_of(result: dict[str, Any]) -> list[Figure]:
    ours, minimal = result["median"]["ours"], result["median"]["minimal"]
    conns = result["connections"]
    name = "minimal FastAPI handler: same body, uvicorn, client"
    return [
        Figure(
            "task_poll_requests_per_s",
            f"GET /v1/tasks/{{id}} with a real key, {conns} connections",
            ours["requests_per_s"],
            "req/s",
            "higher",
            minimal["requests_per_s"],
            name,
            f"errors: {ours['errors']:.0f}",
        ),
        Figure(
            "task_poll_p50_ms",
            "GET /v1/tasks/{id} latency p50 under that load",
            ours["p50_ms"],
            "ms",
            "lower",
            minimal["p50_ms"],
            name,
        ),
        Figure(
            "task_poll_p99_ms",
            "GET /v1/tasks/{id} latency p99 under that load",
            ours["p99_ms"],
            "ms",
            "lower",
            minimal["p99_ms"],
            name,
        ),
    ]


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        url, path, seconds, connections = sys.argv[2:6]
        print(json.dumps(asyncio.run(_drive(url, path, float(seconds), int(connections)))))
        return
    if sys.argv[1:2] == ["--serve-minimal"]:
        serve_minimal(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="strataflow-bench-api-"))
    try:
        result = measure(args.seconds, args.rounds, args.connections, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = figures_of(result)
    print_figures(figures)
    print(f"wrote {write_results('api', figures, result)}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
