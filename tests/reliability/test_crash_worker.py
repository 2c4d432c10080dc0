"""SIGKILL a `strataflow worker` at random points while an API-only server keeps taking uploads.

The split deployment on PostgreSQL: `serve` with STRATAFLOW_API_ONLY runs no
scheduler and no jobs, so every tier and every batch confirm runs in the
worker. Each round kills the worker (seeded delays, before or in the middle
of a tier) while clients upload and batch-confirm through the API, then starts
a new worker. The same promises as the server crash test must hold.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.live import API_KEY, free_port, start_server
from tests.reliability.crash_harness import (
    SENTENCES,
    Ledger,
    api,
    check_uploads,
    documents,
    kill_point,
    setup_text,
    terminal_events,
    text_objects,
    upload_until_killed,
    wait_terminal,
)

SEED, ROUNDS, OBJECTS = 7781, 2, 40


def _start_worker(data_dir: Path, env: dict[str, str], n: int) -> subprocess.Popen[bytes]:
    log_path = data_dir.parent / f"worker-{n}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "strataflow", "worker", "--data-dir", str(data_dir)],
        env={**os.environ, "STRATAFLOW_API_KEY": API_KEY, **env},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90  # did-not-hang bound for imports on a busy machine
    while "Strataflow worker" not in log_path.read_text(errors="replace"):
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
        time.sleep(0.1)
    return process


def test_sigkill_worker_behind_an_api_only_server(tmp_path: Path, private_pg: str) -> None:
    rng = random.Random(SEED)
    data_dir, port = tmp_path / "data", free_port()
    env = {
        "STRATAFLOW_DATABASE_URL": private_pg,
        "STRATAFLOW_TIER_LEASE_S": "3",
        "STRATAFLOW_MANIFEST_CHUNK_ROWS": "4",
        "STRATAFLOW_EXTRACT_BATCH_SIZE": "4",
        "STRATAFLOW_ENGINE_THREADS": "1",
        "STRATAFLOW_SCHEDULER_WORKERS": "1",
        "STRATAFLOW_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }  # the worker signs URLs the API serves
    server = start_server(data_dir, port, {**env, "STRATAFLOW_API_ONLY": "true"})
    worker = _start_worker(data_dir, env, 0)
    ledger = Ledger()
    batches: dict[str, list[str]] = {}
    tasks: list[str] = []
    try:
        with api(server.url) as client:
            collection_id = setup_text(client)
            for round_no in range(ROUNDS):
                object_ids = text_objects(client, f"w{round_no}", OBJECTS)
                batch = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()
                batches[batch["batch_id"]] = object_ids
                stop = threading.Event()
                clients = [
                    threading.Thread(
                        target=upload_until_killed, args=(server.url, ledger, SEED + 10 * round_no + i, stop)
                    )
                    for i in range(2)
                ]
                for thread in clients:
                    thread.start()
                assert client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).status_code == 200
                kill_point(client, batch["batch_id"], rng, mid_tier=round_no % 2 == 1)
                worker.send_signal(signal.SIGKILL)
                worker.wait(15)
                worker = _start_worker(data_dir, env, round_no + 1)
                stop.set()  # the API never went down: the clients stop when told
                for thread in clients:
                    thread.join(30)
                done = wait_terminal(client, f"/v1/buckets/docs/batches/{batch['batch_id']}", 120)
                assert done["status"] == "COMPLETED", done
                if round_no % 2 == 1:
                    assert done["tier_tasks"][0]["performance"]["attempts"] >= 2, done["tier_tasks"][0]
                tasks += [done["task_id"]] + [t["task_id"] for t in done["tier_tasks"]]

            assert check_uploads(client, ledger) > ROUNDS
            history = terminal_events(private_pg, [*batches, *tasks, *ledger.confirm_tasks])
            assert {e: len(h) for e, h in history.items()} == {e: 1 for e in history}, history
            crashed = documents(client, collection_id)
            every_object = [o for ids in batches.values() for o in ids]
            assert len(crashed) == len(every_object) * (SENTENCES + 1)
            clean = client.post("/v1/buckets/docs/batches", json={"object_ids": every_object}).json()
            client.post(f"/v1/buckets/docs/batches/{clean['batch_id']}/submit", json={})
            assert wait_terminal(client, f"/v1/buckets/docs/batches/{clean['batch_id']}", 120)["status"] == "COMPLETED"
            assert documents(client, collection_id) == crashed
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        server.stop()
