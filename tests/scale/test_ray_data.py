"""Ray Data pipelines on a real local Ray, with blobs and manifests on S3 (a moto server over HTTP).

A Ray Data stage worker is killed (SIGKILL) while it runs a batch: Ray restarts
the actor and retries the batch, and the tier completes with every document
written exactly once.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strataflow.config import Settings
from tests.collection_flows import add_object, make_bucket, text_collection
from tests.conftest import ADMIN_KEY
from tests.helpers import wait_task
from tests.s3_server import MotoServer
from tests.scale.test_ray_runner import _api, _submit, _tier_state


def _descendants(root: int) -> set[int]:
    """Process ids under `root` (Linux /proc): this test's Ray (raylet, workers) runs under the test process."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):  # gone meanwhile
                continue
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _kill_stage_worker_mid_batch(running: Callable[[], bool]) -> int:
    """SIGKILL a Ray Data stage worker of this test's Ray while it runs a batch ('ray::MapWorker(…).submit')."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and running():
        for pid in _descendants(os.getpid()):
            title = _title(pid)
            if title.startswith("ray::MapWorker(MapBatches(StageActor))") and title.endswith(".submit"):
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.01)
    raise AssertionError("no Ray Data stage worker ran a batch")


def test_a_killed_ray_data_worker_is_replaced_and_the_tier_completes_on_s3(
        tmp_path: Path, ray_runner: Any, moto_server: MotoServer) -> None:
    objects, sentences = 40, 6
    bucket = f"sf-{secrets.token_hex(6)}"
    moto_server.client().create_bucket(Bucket=bucket)
    settings = Settings(data_dir=tmp_path / "data", api_key=ADMIN_KEY, task_poll_interval_s=0.05,
                        extract_batch_size=2, **moto_server.settings_for(bucket))
    with _api(settings, ray_runner) as (client, runtime):
        client.post("/v1/namespaces", json={"namespace_name": "main"})
        bucket_id = make_bucket(client)
        collection = text_collection(client, "sentences", {"type": "bucket", "bucket_ids": [bucket_id]},
                                     split_by="sentences", chunk_size=1, model="minilm")
        text = " ".join(f"Sentence number {n} of this object." for n in range(sentences))
        object_ids = [add_object(client, f"{text} Unique tail {i}.") for i in range(objects)]
        batch_id, task_id = _submit(client, object_ids)

        killed = _kill_stage_worker_mid_batch(
            lambda: _tier_state(client, batch_id)["status"] in ("PENDING", "IN_PROGRESS"))
        killed_while = _tier_state(client, batch_id)["status"]
        assert wait_task(client, task_id, timeout=180)["status"] == "COMPLETED"
        tier = _tier_state(client, batch_id)
        logs = client.get(f"/v1/buckets/docs/batches/{batch_id}/logs").json()["tiers"][0]["logs"]
        documents = runtime.index.query(collection["collection_id"], None)

    assert killed_while == "IN_PROGRESS"
    # The manifest was read from S3 by Ray Data, not from a local file.
    assert any(line.startswith("ray data: ") and f"read_parquet(s3://{bucket}/data/" in line for line in logs)
    # Ray recovered inside the tier: the same lease, one attempt, the batch retried on a new process.
    assert tier["status"] == "COMPLETED" and tier["performance"]["attempts"] == 1
    pids = {int(line.split(" pid ")[1].split()[0]) for line in logs if line.startswith("actor ")}
    assert pids - {killed}, (killed, pids)
    # Nothing lost, nothing doubled: each object's sentences written once, each row once.
    expected = objects * (sentences + 1)
    assert tier["documents_written"] == expected and tier["performance"]["rows_done"] == objects
    assert len(documents) == expected and len({d.document_id for d in documents}) == expected
    assert len({(d.lineage["root_object_id"], d.payload.get("chunk_index")) for d in documents}) == expected
