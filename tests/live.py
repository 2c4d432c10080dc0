"""Real `strataflow` processes for end-to-end and compatibility tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

API_KEY = "sk_compat_admin_key_0123456789abcd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def run_cli(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `strataflow ARGS` as a user would, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "strataflow", *args, "--data-dir", str(data_dir)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_client(
    *args: str, url: str, key: str | None = API_KEY, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a client command (`ingest`, `watch`, `search`) against a server, configured as a user
    would: STRATAFLOW_URL and STRATAFLOW_API_KEY in the environment (no key: the admin-key file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATAFLOW_")}
    env.update({"STRATAFLOW_URL": url, "COLUMNS": "160", **({"STRATAFLOW_API_KEY": key} if key else {})})
    return subprocess.run(
        [sys.executable, "-m", "strataflow", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_server(data_dir: Path, port: int | None = None, extra_env: dict[str, str] | None = None) -> LiveServer:
    port = port or free_port()
    env = {**os.environ, "STRATAFLOW_API_KEY": API_KEY, "STRATAFLOW_TASK_POLL_INTERVAL_S": "0.1", **(extra_env or {})}
    log_path = data_dir.parent / f"server-{port}.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "strataflow",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/v1/health/liveness", timeout=1).status_code == 200:
                return LiveServer(url, data_dir, process, log_path)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (state, ppid, ...); None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _running(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has exited already


def child_pids(pid: int) -> set[int]:
    """The running processes whose parent is `pid` (read from /proc: no dependency for one field)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] != "Z" and int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait until none of `pids` runs any more; the ones still running at the deadline."""
    deadline = time.monotonic() + timeout
    alive = {pid for pid in pids if _running(pid)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {pid for pid in alive if _running(pid)}
    return alive
