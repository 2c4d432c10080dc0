"""A real `strataflow serve` on loopback for benchmarks, and the client calls they share."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
API_KEY = "sk_bench_admin_key_0123456789abcdef"


class Server:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "STRATAFLOW_API_KEY": API_KEY,
            "STRATAFLOW_TASK_POLL_INTERVAL_S": "0.05",
            "STRATAFLOW_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
            **(env or {}),
        }
        self.log = (data_dir.parent / "server.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "strataflow",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180  # start-up takes over a minute when the shared cores are busy
        while True:
            try:
                if httpx.get(f"{self.url}/v1/health/liveness", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()  # the caller never gets this object to stop: do not leave the server running
                raise RuntimeError("server did not start; see server.log")
            time.sleep(0.1)

    def memory(self) -> dict[str, int]:
        values = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024
        return values

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def api_client(server: Server) -> httpx.Client:
    client = httpx.Client(
        base_url=server.url, timeout=600, headers={"Authorization": f"Bearer {API_KEY}", "X-Namespace": "bench"}
    )
    client.post("/v1/namespaces", json={"namespace_name": "bench", "feature_extractors": []}).raise_for_status()
    schema = {"properties": {"file": {"type": "video"}, "note": {"type": "text"}}}
    client.post("/v1/buckets", json={"bucket_name": "bench", "bucket_schema": schema}).raise_for_status()
    return client


def create_upload(
    api: httpx.Client, name: str, size: int, prop: str = "file", content_type: str = "video/mp4"
) -> dict[str, Any]:
    response = api.post(
        "/v1/buckets/bench/uploads",
        json={"filename": name, "content_type": content_type, "blob_property": prop, "file_size_bytes": size},
    )
    response.raise_for_status()
    return dict(response.json())


def wait_task(api: httpx.Client, task_id: str) -> dict[str, Any]:
    while True:
        response = api.get(f"/v1/tasks/{task_id}")
        response.raise_for_status()
        task = response.json()
        if task["status"] in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"):
            return dict(task)
        time.sleep(0.02)
