"""Two `strataflow worker`s with one hostname: kill or pause the one running a tier, lose nothing.

What Docker `--network host` or a Kubernetes `hostNetwork` pod gives: workers that
share the hostname but each have their own PID namespace. Here each runs under
`unshare --pid --fork --mount-proc` (a few throwaway processes first, so the
workers' PIDs differ as they would in containers), against one PostgreSQL schema,
behind an API-only server. A worker must never take a tier from a live owner it
cannot see; a dead or paused owner's tier is taken over after its lease, resumed
from its last committed chunk, and a paused owner that wakes up writes nothing
more. The same runs once with both workers in this PID namespace, where a dead
owner's tier is taken at once.

Every round ends with each object's documents exactly once. The printed
kill-to-done times are figures for the docs, not assertions.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from strataflow.engine.leases import Holder
from tests.live import API_KEY, free_port, start_server
from tests.reliability.crash_harness import (
    SENTENCES,
    api,
    documents,
    setup_text,
    terminal_events,
    text_objects,
    wait_terminal,
)

OBJECTS = 24
LEASE_S = 6  # long enough that a busy machine does not starve a live owner's heartbeats
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="PID namespaces need root and unshare(1)"
)


@dataclass
class Worker:
    launcher: subprocess.Popen[bytes]  # the worker itself, or the `unshare` that runs it
    pid: int  # the worker's PID as this test sees it
    instance: str  # its lease-holder instance id
    log_path: Path

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.launcher.poll() is not None:
            return
        try:
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.launcher.wait(60)
        except subprocess.TimeoutExpired:
            self.launcher.kill()
            self.launcher.wait(10)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _worker_pid(launcher: int) -> int | None:
    """The `strataflow worker` process under `launcher` (itself, or a descendant)."""
    pending = [launcher]
    while pending:
        pid = pending.pop()
        try:
            if b"strataflow\x00worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
        pending += _children(pid)
    return None


def _start_worker(data_dir: Path, env: dict[str, str], name: str, namespace_forks: int | None) -> Worker:
    """A worker; with `namespace_forks`, in a PID namespace of its own, after that many throwaway processes."""
    log_path = data_dir.parent / f"worker-{name}.log"
    command = [sys.executable, "-m", "strataflow", "worker", "--data-dir", str(data_dir)]
    if namespace_forks is not None:
        script = f"for i in $(seq {namespace_forks}); do /bin/true; done; {' '.join(command)}"
        command = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script]
    launcher = subprocess.Popen(
        command,
        env={**os.environ, "STRATAFLOW_API_KEY": API_KEY, "COLUMNS": "250", **env},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120  # did-not-hang bound for imports on a busy machine
    while (found := re.search(r"Strataflow worker (\S+): engine", log_path.read_text(errors="replace"))) is None:
        assert launcher.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
        time.sleep(0.1)
    holder = Holder.parse(found.group(1))
    pid = _worker_pid(launcher.pid)
    assert holder is not None and pid is not None, (found.group(1), pid)
    return Worker(launcher, pid, holder.instance, log_path)


def _lease(database: Engine, batch_id: str) -> tuple[str | None, int]:
    with database.connect() as conn:
        owner, attempts = conn.execute(
            text("SELECT lease_owner, attempts FROM batch_tiers WHERE batch_id = :b AND tier_num = 0"), {"b": batch_id}
        ).one()
    holder = Holder.parse(owner)
    return (holder.instance if holder else None), int(attempts)


def _takeovers(database: Engine, batch_id: str) -> list[str]:
    """Why the tier left its holder: '<holder> died' (seen dead on this host) or 'lease of <holder> expired'."""
    with database.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT reason FROM status_events WHERE entity_id = :t AND "
                    "from_status = 'IN_PROGRESS' AND to_status = 'PENDING' ORDER BY event_id"
                ),
                {"t": f"{batch_id}/tier_0"},
            ).scalars()
        )


def _tier(client: httpx.Client, batch_id: str) -> dict[str, object]:
    tiers = client.get(f"/v1/buckets/docs/batches/{batch_id}").json()["tier_tasks"]
    return dict(tiers[0]) if tiers else {}


def _mid_tier(client: httpx.Client, batch_id: str) -> int:
    """Wait until some rows, not all, are committed; return how many."""
    deadline = time.monotonic() + 120  # did-not-hang bound
    while time.monotonic() < deadline:
        performance = _tier(client, batch_id).get("performance") or {}
        assert isinstance(performance, dict)
        if 0 < performance.get("rows_done", 0) < performance.get("rows_total", 0):
            return int(performance["rows_done"])
        time.sleep(0.02)
    raise AssertionError(f"the tier never showed partial progress: {_tier(client, batch_id)}")


def _round(
    client: httpx.Client, database: Engine, workers: list[Worker], tag: str, sig: int
) -> tuple[Worker, list[str], str]:
    """Submit a batch, hit the worker running its tier with `sig`, and see it through."""
    object_ids = text_objects(client, tag, OBJECTS)
    batch_id = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()["batch_id"]
    assert client.post(f"/v1/buckets/docs/batches/{batch_id}/submit", json={}).status_code == 200
    committed = _mid_tier(client, batch_id)
    owner, _attempts = _lease(database, batch_id)
    victim = next(w for w in workers if w.instance == owner)
    victim.signal(sig)
    hit = time.monotonic()
    if sig == signal.SIGSTOP:
        deadline = time.monotonic() + 120  # did-not-hang bound: the lease is LEASE_S
        while _lease(database, batch_id)[0] in (owner, None):
            assert time.monotonic() < deadline, "the paused owner's tier was never taken over"
            time.sleep(0.05)
        victim.signal(signal.SIGCONT)  # it wakes up believing it still runs the tier
    deadline, taken = time.monotonic() + 180, None  # did-not-hang bound
    while (tier := _tier(client, batch_id)).get("status") not in (
        "COMPLETED",
        "FAILED",
        "CANCELED",
        "COMPLETED_WITH_ERRORS",
    ):
        performance = tier.get("performance") or {}
        assert isinstance(performance, dict)
        assert performance.get("rows_done", committed) >= committed, ("progress went back", committed, tier)
        if taken is None and _lease(database, batch_id)[0] not in (owner, None):
            taken = time.monotonic() - hit
        assert time.monotonic() < deadline, tier
        time.sleep(0.05)
    done = wait_terminal(client, f"/v1/buckets/docs/batches/{batch_id}", 60)
    elapsed = time.monotonic() - hit
    assert done["status"] == "COMPLETED", done
    assert done["tier_tasks"][0]["performance"]["attempts"] >= 2, done["tier_tasks"][0]
    print(
        f"\n{tag}: {signal.Signals(sig).name} of the owner at {committed}/{OBJECTS} committed rows -> "
        f"taken over after {taken if taken is None else round(taken, 1)}s, batch COMPLETED after {elapsed:.1f}s"
    )
    return victim, object_ids, batch_id


def test_workers_sharing_a_hostname_never_lose_or_double_documents(tmp_path: Path, private_pg: str) -> None:
    data_dir, port = tmp_path / "data", free_port()
    env = {
        "STRATAFLOW_DATABASE_URL": private_pg,
        "STRATAFLOW_TIER_LEASE_S": str(LEASE_S),
        "STRATAFLOW_MANIFEST_CHUNK_ROWS": "4",
        "STRATAFLOW_EXTRACT_BATCH_SIZE": "4",
        "STRATAFLOW_ENGINE_THREADS": "1",
        "STRATAFLOW_SCHEDULER_WORKERS": "1",
        "STRATAFLOW_TASK_POLL_INTERVAL_S": "0.2",
        "STRATAFLOW_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    server = start_server(data_dir, port, {**env, "STRATAFLOW_API_ONLY": "true"})
    workers: list[Worker] = []
    objects: list[str] = []
    batches: list[str] = []
    database = create_engine(private_pg)
    try:
        with api(server.url) as client:
            collection_id = setup_text(client)

            # One PID namespace (one host): a dead owner is seen dead, its tier taken at once.
            workers = [_start_worker(data_dir, env, f"host-{n}", None) for n in range(2)]
            _victim, ids, batch_id = _round(client, database, workers, "samehost", signal.SIGKILL)
            objects, batches = objects + ids, [*batches, batch_id]
            assert "died" in [r.rpartition(" ")[2] for r in _takeovers(database, batch_id)]
            for worker in workers:
                worker.stop()

            # Own PID namespaces, one hostname: nobody can see the owner; its lease decides.
            workers = [_start_worker(data_dir, env, f"ns-{n}", 1 + 3 * n) for n in range(2)]
            victim, ids, batch_id = _round(client, database, workers, "killed", signal.SIGKILL)
            objects, batches = objects + ids, [*batches, batch_id]
            # The survivor could not see the dead owner's process: it waited for the lease, as it must
            # (a live owner in another namespace is never taken for dead either: no "died" at all).
            assert {r.rpartition(" ")[2] for r in _takeovers(database, batch_id)} == {"expired"}
            victim.launcher.wait(30)
            workers = [w for w in workers if w is not victim] + [_start_worker(data_dir, env, "ns-2", 7)]

            victim, ids, batch_id = _round(client, database, workers, "paused", signal.SIGSTOP)
            objects, batches = objects + ids, [*batches, batch_id]
            assert {r.rpartition(" ")[2] for r in _takeovers(database, batch_id)} == {"expired"}
            deadline = time.monotonic() + 60  # did-not-hang bound: it notices at its next heartbeat or chunk
            while "lease lost" not in victim.log() and "taken over before its end" not in victim.log():
                assert time.monotonic() < deadline, victim.log()[-3000:]
                time.sleep(0.1)
            assert victim.launcher.poll() is None  # it stopped the tier, not itself: it runs the next one

            found = documents(client, collection_id)
            per_object = {o: 0 for o in objects}
            for doc in found.values():
                per_object[str(doc["root"])] += 1
            assert per_object == {o: SENTENCES + 1 for o in objects}, per_object
            assert len(found) == len(objects) * (SENTENCES + 1)
            tasks = [
                t["task_id"] for b in batches for t in client.get(f"/v1/buckets/docs/batches/{b}").json()["tier_tasks"]
            ]
            history = terminal_events(private_pg, [*batches, *tasks])
            assert {e: h for e, h in history.items() if len(h) != 1} == {}, history
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
        database.dispose()
