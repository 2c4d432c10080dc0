"""Two `strataflow worker` processes against one PostgreSQL and one S3 share the batches of 2,000 objects.

The API runs in the test process without a scheduler of its own, so every tier
is claimed by a worker. Submits wake the workers through LISTEN/NOTIFY; their
poll interval is set long so the wake-up does the work (nothing here times it).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from fastapi.testclient import TestClient

from strataflow.app import create_app
from strataflow.config import Settings
from strataflow.engine.runners import Runner
from strataflow.runtime import open_runtime
from tests.collection_flows import make_bucket, text_collection
from tests.conftest import ADMIN_KEY
from tests.helpers import wait_task
from tests.s3_server import MotoServer

OBJECTS, BATCHES = 2000, 4


def _worker(name: str, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = tmp_path / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "strataflow", "worker", "--data-dir", str(tmp_path / name)],
        env={**os.environ, **env},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return process, log_path


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while "Strataflow worker" not in log_path.read_text(errors="replace"):
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
        time.sleep(0.1)


def test_two_workers_share_batches_without_double_work(
    tmp_path: Path, private_pg: str, moto_server: MotoServer, shared_runner: Runner
) -> None:
    bucket = f"sf-{secrets.token_hex(6)}"
    moto_server.client().create_bucket(Bucket=bucket)
    index_dir = tmp_path / "index"  # one LanceDB for all: both workers are on this host (file-locked writes)
    settings = Settings(
        data_dir=tmp_path / "api",
        database_url=private_pg,
        index_uri=str(index_dir),
        api_key=ADMIN_KEY,
        **moto_server.settings_for(bucket),
    )
    env = {
        "STRATAFLOW_DATABASE_URL": private_pg,
        "STRATAFLOW_INDEX_URI": str(index_dir),
        "STRATAFLOW_API_KEY": ADMIN_KEY,
        "STRATAFLOW_ENGINE": "local",
        "STRATAFLOW_ENGINE_THREADS": "1",
        "STRATAFLOW_SCHEDULER_WORKERS": "1",
        "STRATAFLOW_TASK_POLL_INTERVAL_S": "30",
        "STRATAFLOW_MANIFEST_CHUNK_ROWS": "250",
        **{f"STRATAFLOW_{k.upper()}": str(v) for k, v in moto_server.settings_for(bucket).items()},
    }

    runtime = open_runtime(settings, shared_runner)  # migrates the schema before the workers start
    workers = [_worker(name, tmp_path, env) for name in ("worker-a", "worker-b")]
    try:
        for process, log_path in workers:
            _wait_ready(process, log_path)
        app = create_app(runtime=runtime, run_background=False)  # the API alone: no scheduler here
        with TestClient(app, raise_server_exceptions=False) as client:
            client.headers.update({"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": "main"})
            client.post("/v1/namespaces", json={"namespace_name": "main"})
            bucket_id = make_bucket(client)
            collection = text_collection(
                client, "notes", {"type": "bucket", "bucket_ids": [bucket_id]}, model="wordllama"
            )
            object_ids: list[str] = []
            for start in range(0, OBJECTS, 100):
                items = [
                    {"blobs": [{"property": "content", "type": "text", "data": f"Note {i} about item {i % 7}."}]}
                    for i in range(start, start + 100)
                ]
                created = client.post("/v1/buckets/docs/objects/batch", json={"objects": items}).json()
                object_ids += [o["object_id"] for o in created["succeeded"]]
            assert len(object_ids) == OBJECTS
            per_batch = OBJECTS // BATCHES
            submitted = []
            for start in range(0, OBJECTS, per_batch):
                batch = client.post(
                    "/v1/buckets/docs/batches", json={"object_ids": object_ids[start : start + per_batch]}
                ).json()
                task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
                submitted.append((batch["batch_id"], task["task_id"]))
            for _, task_id in submitted:
                assert wait_task(client, task_id, timeout=240)["status"] == "COMPLETED"
            tiers = [
                client.get(f"/v1/buckets/docs/batches/{batch_id}").json()["tier_tasks"][0] for batch_id, _ in submitted
            ]
            logs = [
                client.get(f"/v1/buckets/docs/batches/{batch_id}/logs").json()["tiers"][0]["logs"]
                for batch_id, _ in submitted
            ]
        documents = runtime.index.query(collection["collection_id"], None)
    finally:
        for process, _ in workers:
            process.send_signal(signal.SIGTERM)
        for process, log_path in workers:
            assert process.wait(60) == 0, log_path.read_text(errors="replace")  # a clean SIGTERM shutdown
        runtime.close()

    # Each tier ran once, by one worker, and wrote each of its documents once.
    assert [t["performance"]["attempts"] for t in tiers] == [1] * BATCHES
    assert sum(t["documents_written"] for t in tiers) == OBJECTS
    assert len(documents) == OBJECTS and len({d.document_id for d in documents}) == OBJECTS
    assert Counter(d.lineage["root_object_id"] for d in documents) == Counter({o: 1 for o in object_ids})
    ran_on = Counter(line.rsplit(" ran on ", 1)[1] for tier_logs in logs for line in tier_logs if " ran on " in line)
    assert sum(ran_on.values()) == BATCHES
    assert len(ran_on) == 2, ran_on  # both workers took tiers (SKIP LOCKED hands each a different one)
