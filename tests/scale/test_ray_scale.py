"""The Ray Data path on a small cluster (the session's 2-CPU Ray): warm stage actors, no silent hang.

* Stage actors outlive a tier: a second batch of the same collection runs on the same actors,
  and a killed stage actor (SIGKILL mid-batch) is replaced with every document written once.
* A tier that cannot make progress (its stage actors cannot be placed: every CPU is held) is
  reported on the tier and its task with Ray's own reason, its rows fail as a retryable
  resource error, and a retry completes once the cluster has room; on both Ray paths.
* Two batches at once with `ray_actor_cpus=0.5` complete on 2 CPUs (the read is a 0.25-CPU task,
  not a whole CPU), two collections each.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import ray

from strataflow.config import Settings
from tests.collection_flows import add_object, make_bucket, text_collection
from tests.conftest import ADMIN_KEY
from tests.helpers import wait_task
from tests.scale.test_ray_data import _descendants, _title
from tests.scale.test_ray_runner import _api, _submit, _tier_state

SENTENCES = 6


def _settings(tmp_path: Path, name: str) -> Settings:
    return Settings(data_dir=tmp_path / name, api_key=ADMIN_KEY, task_poll_interval_s=0.05, extract_batch_size=2)


def _objects(client: Any, count: int, tag: str) -> list[str]:
    text = " ".join(f"Sentence number {n} of this object." for n in range(SENTENCES))
    return [add_object(client, f"{text} Unique tail {tag} {i}.") for i in range(count)]


def _per_object(documents: list[Any]) -> Counter[str]:
    return Counter(d.lineage["root_object_id"] for d in documents)


def _kill_stage_host_mid_batch(running: Any) -> int:
    """SIGKILL a warm stage actor of this test's Ray while it runs a batch ('ray::StageHost.run')."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and running():
        for pid in _descendants(os.getpid()):
            if _title(pid).startswith("ray::StageHost.run"):
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.01)
    raise AssertionError("no stage actor ran a batch")


def test_stage_actors_stay_warm_across_batches_and_a_killed_one_is_replaced(tmp_path: Path, ray_runner: Any) -> None:
    with _api(_settings(tmp_path, "warm"), ray_runner) as (client, runtime):
        client.post("/v1/namespaces", json={"namespace_name": "main"})
        collection = text_collection(
            client,
            "sentences",
            {"type": "bucket", "bucket_ids": [make_bucket(client)]},
            split_by="sentences",
            chunk_size=1,
            model="minilm",
        )["collection_id"]
        runs = []
        for round_ in range(2):
            batch_id, task_id = _submit(client, _objects(client, 4, f"r{round_}"))
            assert wait_task(client, task_id, timeout=180)["status"] == "COMPLETED"
            tier = _tier_state(client, batch_id)
            logs = client.get(f"/v1/buckets/docs/batches/{batch_id}/logs").json()["tiers"][0]["logs"]
            runs.append((tier["extractor_jobs"][0]["ray_actor_ids"], logs))

        # The second batch ran on the first one's actors, which it found warm.
        (first_actors, first_logs), (second_actors, second_logs) = runs
        assert first_actors and set(second_actors) == set(first_actors)
        assert any(line.startswith("ray data: job ") and "(warm," in line for line in second_logs)
        for logs in (first_logs, second_logs):  # the per-tier start cost, for the record
            print(next(line for line in logs if line.startswith("ray data: first batch after")))

        # A warm stage actor killed while it runs a batch: Ray restarts it and runs the batch again.
        objects = _objects(client, 30, "kill")
        batch_id, task_id = _submit(client, objects)
        started = time.monotonic()
        killed = _kill_stage_host_mid_batch(
            lambda: _tier_state(client, batch_id)["status"] in ("PENDING", "IN_PROGRESS")
        )
        killed_at = time.monotonic()
        assert wait_task(client, task_id, timeout=240)["status"] == "COMPLETED"
        print(
            f"stage actor SIGKILL: killed {killed_at - started:.1f}s after submit, "
            f"done {time.monotonic() - killed_at:.1f}s after the kill"
        )
        tier = _tier_state(client, batch_id)
        logs = client.get(f"/v1/buckets/docs/batches/{batch_id}/logs").json()["tiers"][0]["logs"]
        documents = [d for d in runtime.index.query(collection, None) if d.lineage["root_object_id"] in objects]

    assert tier["status"] == "COMPLETED" and tier["performance"]["attempts"] == 1
    pids = {int(line.split(" pid ")[1].split()[0]) for line in logs if line.startswith("actor ")}
    assert pids - {killed}, (killed, pids)
    per_object = _per_object(documents)
    print(f"documents per object after the kill: {sorted(Counter(per_object.values()).items())}")
    assert per_object == {object_id: SENTENCES + 1 for object_id in objects}
    assert len({d.document_id for d in documents}) == len(documents)


@pytest.mark.parametrize("ray_data", [True, False], ids=["ray-data", "per-chunk"])
def test_a_tier_that_cannot_be_placed_is_reported_failed_retryable_and_retried(
    tmp_path: Path, ray_runner: Any, ray_data: bool
) -> None:
    from strataflow.engine.runners.ray import RayRunner

    ray_runner.pipelines.pools.stop_idle()  # the warm actors of earlier tests give their CPUs back

    @ray.remote(num_cpus=2)
    class Hog:  # holds every CPU of the cluster: the stage's actors cannot be placed
        def ready(self) -> bool:
            return True

    hog = Hog.remote()  # type: ignore[attr-defined]
    runner = RayRunner.from_settings(Settings(engine="ray", ray_data=ray_data, ray_actor_cpus=1.0, tier_stall_s=3))
    settings = _settings(tmp_path, "stall")
    try:
        assert ray.get(hog.ready.remote(), timeout=120)
        with _api(settings, runner) as (client, _):
            client.post("/v1/namespaces", json={"namespace_name": "main"})
            collection = text_collection(
                client,
                "sentences",
                {"type": "bucket", "bucket_ids": [make_bucket(client)]},
                split_by="sentences",
                chunk_size=1,
                model="wordllama",
            )["collection_id"]
            objects = _objects(client, 6, "stall")
            batch_id, task_id = _submit(client, objects)
            task = wait_task(client, task_id, timeout=120)
            tier = _tier_state(client, batch_id)
            tier_task = client.get(f"/v1/tasks/{tier['task_id']}").json()
            logs = client.get(f"/v1/buckets/docs/batches/{batch_id}/logs").json()["tiers"][0]["logs"]
    finally:
        ray.kill(hog)
        runner.close()

    # Reported: on the tier (its errors) and its task (the progress it shows), with Ray's reason.
    assert task["status"] == "FAILED" and tier["status"] == "FAILED"
    [error] = tier["errors"]
    assert error["error_type"] == "resource" and error["affected_count"] == len(objects)
    assert "stalled" in error["message"] and "pending demand" in error["message"]
    assert "'CPU': 1.0" in error["message"]
    assert error["recovery_suggestion"] == "retry the batch"
    stalled = tier_task["additional_data"]["progress"]["stalled"]
    assert stalled.startswith("no extraction result for ") and "pending demand" in stalled
    assert any(": stalled: no extraction result for 3s" in line for line in logs)
    assert "Traceback" not in str(tier) and "/work/" not in error["message"]

    # Retryable: once the cluster has room, a retry runs the failed rows and completes.
    with _api(settings, ray_runner) as (client, runtime):
        retry = client.post(f"/v1/buckets/docs/batches/{batch_id}/retry", json={"retry_mode": "all"}).json()
        assert retry["retried_count"] == len(objects)
        assert wait_task(client, retry["task_id"], timeout=180)["status"] == "COMPLETED"
        per_object = _per_object(runtime.index.query(collection, None))
    assert per_object == {object_id: SENTENCES + 1 for object_id in objects}


def test_two_batches_at_once_complete_on_two_cpus_with_half_cpu_actors(tmp_path: Path, ray_runner: Any) -> None:
    from strataflow.engine.runners.ray import RayRunner

    runner = RayRunner.from_settings(Settings(engine="ray", ray_actor_cpus=0.5, tier_stall_s=120))
    try:
        settings = _settings(tmp_path, "two").model_copy(update={"scheduler_workers": 2})
        with _api(settings, runner) as (client, runtime):
            client.post("/v1/namespaces", json={"namespace_name": "main"})
            bucket_id = make_bucket(client)
            collections = [
                text_collection(
                    client,
                    name,
                    {"type": "bucket", "bucket_ids": [bucket_id]},
                    split_by="sentences",
                    chunk_size=size,
                    model="wordllama",
                )["collection_id"]
                for name, size in (("ones", 1), ("twos", 2))
            ]
            batches = [_objects(client, 8, f"b{n}") for n in range(2)]
            submitted = [_submit(client, objects) for objects in batches]
            statuses = [wait_task(client, task_id, timeout=300)["status"] for _, task_id in submitted]
            ones, twos = (_per_object(runtime.index.query(c, None)) for c in collections)
        assert statuses == ["COMPLETED", "COMPLETED"]
        every = [object_id for objects in batches for object_id in objects]
        assert ones == {object_id: SENTENCES + 1 for object_id in every}
        assert twos == {object_id: (SENTENCES + 2) // 2 for object_id in every}
    finally:
        runner.close()
