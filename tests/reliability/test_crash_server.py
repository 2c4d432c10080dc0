"""SIGKILL the whole server at random points while clients upload, confirm and a batch runs; restart.

Seeded, so a failure replays: each round submits a batch of new objects while
three clients upload and confirm, then kills the server after a random delay
(before the tier or in the middle of it; mid-PUT, mid-confirm, mid-batch-confirm).
After every restart the batch must finish; at the end every confirmed upload
has exactly one object with its exact bytes, every batch and task entered
exactly one terminal state, and a clean re-run of all batches' objects yields
exactly the documents the crashed runs left (same ids, same payloads).
tests/e2e/test_crash_recovery.py covers one kill at a fixed point mid-tier.
"""

from __future__ import annotations

import random
import signal
import threading
from pathlib import Path

from tests.live import LiveServer, free_port, start_server
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

SEED, ROUNDS, OBJECTS = 20240611, 3, 40
ENV = {
    "STRATAFLOW_TIER_LEASE_S": "3",
    "STRATAFLOW_MANIFEST_CHUNK_ROWS": "4",
    "STRATAFLOW_EXTRACT_BATCH_SIZE": "4",
    "STRATAFLOW_ENGINE_THREADS": "1",
}


def _kill_and_restart(server: LiveServer, port: int) -> LiveServer:
    server.stop(signal.SIGKILL)
    return start_server(server.data_dir, port, ENV)  # same port: presigned URLs name it


def test_sigkill_server_during_uploads_and_tiers(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    port = free_port()
    server = start_server(tmp_path / "data", port, ENV)
    ledger = Ledger()
    batches: dict[str, list[str]] = {}  # batch id -> its objects
    tasks: list[str] = []
    try:
        with api(server.url) as client:
            collection_id = setup_text(client)
        for round_no in range(ROUNDS):
            with api(server.url) as client:
                object_ids = text_objects(client, f"r{round_no}", OBJECTS)
                batch = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()
                batches[batch["batch_id"]] = object_ids
                stop = threading.Event()
                clients = [
                    threading.Thread(
                        target=upload_until_killed, args=(server.url, ledger, SEED + 10 * round_no + i, stop)
                    )
                    for i in range(3)
                ]
                for thread in clients:
                    thread.start()
                task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={})
                assert task.status_code == 200, task.text
                kill_point(client, batch["batch_id"], rng, mid_tier=round_no % 2 == 1)
            server = _kill_and_restart(server, port)
            stop.set()
            for thread in clients:
                thread.join(30)
            with api(server.url) as client:
                done = wait_terminal(client, f"/v1/buckets/docs/batches/{batch['batch_id']}", 120)
                assert done["status"] == "COMPLETED", done
                if round_no % 2 == 1:  # killed mid-tier: the restarted server resumed it
                    assert done["tier_tasks"][0]["performance"]["attempts"] >= 2, done["tier_tasks"][0]
                tasks += [done["task_id"]] + [t["task_id"] for t in done["tier_tasks"]]

        with api(server.url) as client:
            confirmed = check_uploads(client, ledger)
            assert confirmed > ROUNDS, f"only {confirmed} uploads confirmed: the rounds did too little to test"
            history = terminal_events(
                f"sqlite:///{tmp_path / 'data' / 'strataflow.db'}", [*batches, *tasks, *ledger.confirm_tasks]
            )
            assert {e: len(h) for e, h in history.items()} == {e: 1 for e in history}, history

            crashed = documents(client, collection_id)
            every_object = [o for ids in batches.values() for o in ids]
            assert len(crashed) == len(every_object) * (SENTENCES + 1)
            assert {d["root"] for d in crashed.values()} == set(every_object)
            clean = client.post("/v1/buckets/docs/batches", json={"object_ids": every_object}).json()
            client.post(f"/v1/buckets/docs/batches/{clean['batch_id']}/submit", json={})
            assert wait_terminal(client, f"/v1/buckets/docs/batches/{clean['batch_id']}", 120)["status"] == "COMPLETED"
            assert documents(client, collection_id) == crashed
    finally:
        server.stop()
