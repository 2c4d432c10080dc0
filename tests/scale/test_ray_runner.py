"""The Ray runner on a real local Ray: same documents as the local runner on both of its paths (Ray Data
pipelines, per-chunk actor calls), and survival of a killed per-chunk actor (tests/scale/test_ray_data.py
kills a Ray Data worker)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from strataflow.app import create_app
from strataflow.config import Settings
from strataflow.engine.runners import Runner
from strataflow.runtime import Runtime, open_runtime
from tests.collection_flows import add_object, make_bucket, text_collection
from tests.conftest import ADMIN_KEY
from tests.helpers import wait_task

TEXT = "Cats purr softly. Dogs bark loudly. Birds sing at dawn."


@contextmanager
def _api(settings: Settings, runner: Runner) -> Iterator[tuple[TestClient, Runtime]]:
    runtime = open_runtime(settings, runner)
    try:
        with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
            client.headers.update({"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": "main"})
            yield client, runtime
    finally:
        runtime.close()


def _submit(client: TestClient, object_ids: list[str]) -> tuple[str, str]:
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()
    task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={})
    assert task.status_code == 200, task.text
    return str(batch["batch_id"]), str(task.json()["task_id"])


def _snapshot(runtime: Runtime, collection_ids: list[str]) -> dict[str, Any]:
    """Every document of the collections, by id: payload, lineage chain and vectors."""
    found: dict[str, Any] = {}
    for collection_id in collection_ids:
        for doc in runtime.index.query(collection_id, None, with_vectors=True):
            chain = [step.get("collection_id") for step in doc.lineage.get("chain", [])]
            found[doc.document_id] = (doc.payload, doc.lineage.get("root_object_id"), chain, doc.vectors)
    return found


def _assert_same_documents(local: dict[str, Any], other: dict[str, Any]) -> None:
    assert set(other) == set(local)
    for document_id, (payload, root, chain, vectors) in local.items():
        other_payload, other_root, other_chain, other_vectors = other[document_id]
        assert (other_payload, other_root, other_chain) == (payload, root, chain)
        assert set(other_vectors) == set(vectors)
        for name, vector in vectors.items():
            np.testing.assert_allclose(np.asarray(other_vectors[name]), np.asarray(vector), rtol=1e-4, atol=1e-5)


def _counters(tier: dict[str, Any]) -> dict[str, Any]:
    return {
        k: tier[k]
        for k in (
            "source_documents_fetched",
            "documents_after_source_filter",
            "documents_missing_input_fields",
            "documents_submitted_to_engine",
            "documents_written",
        )
    }


def _run_again(
    settings: Settings, runner: Runner, object_ids: list[str], collections: list[str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Empty the collections, run the batch again on `runner`: the documents, the batch, its logs."""
    with _api(settings, runner) as (client, runtime):
        for collection_id in collections:  # the run must produce every document anew
            runtime.index.delete(collection_id, "document_id IS NOT NULL")
        batch_id, task_id = _submit(client, object_ids)
        assert wait_task(client, task_id, timeout=180)["status"] == "COMPLETED"
        batch = client.get(f"/v1/buckets/docs/batches/{batch_id}").json()
        logs = client.get(f"/v1/buckets/docs/batches/{batch_id}/logs").json()
        return _snapshot(runtime, collections), batch, logs


def test_two_tier_pipeline_on_ray_matches_the_local_runner(
    tmp_path: Path, shared_runner: Runner, ray_runner: Any, ray_chunk_runner: Any
) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_key=ADMIN_KEY, task_poll_interval_s=0.05)
    with _api(settings, shared_runner) as (client, runtime):
        client.post("/v1/namespaces", json={"namespace_name": "main"})
        bucket_id = make_bucket(client)
        chunks = text_collection(
            client,
            "sentences",
            {"type": "bucket", "bucket_ids": [bucket_id]},
            split_by="sentences",
            chunk_size=1,
            model="minilm",
        )
        barking = {"filters": {"field": "text", "operator": "contains", "value": "bark"}}  # a source filter
        words = text_collection(
            client,
            "pairs",
            {"type": "collection", "collection_ids": [chunks["collection_id"]], "source_filters": barking},
            mapping="text",
            split_by="words",
            chunk_size=2,
            model="minilm",
        )
        collections = [chunks["collection_id"], words["collection_id"]]
        object_ids = [add_object(client, f"{TEXT} Object {i} ends here.", title=f"note {i}") for i in range(4)]
        local_batch, task_id = _submit(client, object_ids)
        assert wait_task(client, task_id, timeout=120)["status"] == "COMPLETED"
        local = _snapshot(runtime, collections)
        local_tiers = [_counters(t) for t in client.get(f"/v1/buckets/docs/batches/{local_batch}").json()["tier_tasks"]]
    # 4 sentences per object; the one that barks split into 2 word pairs.
    assert len(local) == 4 * 4 + 4 * 2 and local_tiers[1]["documents_after_source_filter"] == 4

    # Ray Data: each tier's collection is one dataset over the tier's manifest.
    on_ray_data, batch, logs = _run_again(settings, ray_runner, object_ids, collections)
    _assert_same_documents(local, on_ray_data)
    assert [_counters(t) for t in batch["tier_tasks"]] == local_tiers
    for tier in batch["tier_tasks"]:  # the real Ray job, and the stage actors that ran
        assert tier["ray_job_id"] == ray_runner.job_id
        job = tier["extractor_jobs"][0]
        assert job["ray_job_id"] == ray_runner.job_id and job["ray_actor_ids"]
    for tier in logs["tiers"]:
        assert tier["ray_job_id"] == ray_runner.job_id
        lines = tier["logs"]
        dataset = f"{batch['batch_id']}-tier{tier['tier_num']}-"
        assert any(line.startswith(f"ray data: job {ray_runner.job_id} dataset {dataset}") for line in lines)
        stats = [line for line in lines if line.startswith("ray data stats: Operator")]
        assert any("MapBatches(StageForwarder)" in line for line in stats)
        actor_lines = [line for line in lines if line.startswith("actor ")]
        assert actor_lines and all(" pid " in line and " batch " in line for line in actor_lines)
        actors = batch["tier_tasks"][tier["tier_num"]]["extractor_jobs"][0]["ray_actor_ids"]
        assert {line.split()[1] for line in actor_lines} <= set(actors)
        assert any(line.startswith("INFO strataflow.ray_data: ") for line in lines)  # the stage's own lines

    # Per-chunk calls to a pool of actors (ray_data off): the same documents again.
    on_ray_chunks, batch, logs = _run_again(settings, ray_chunk_runner, object_ids, collections)
    _assert_same_documents(local, on_ray_chunks)
    for tier in logs["tiers"]:
        assert tier["ray_job_id"] == ray_chunk_runner.job_id
        assert any(line.startswith("actor ") and " pid " in line for line in tier["logs"])
        assert not any(line.startswith("ray data") for line in tier["logs"])


def _tier_state(client: TestClient, batch_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/buckets/docs/batches/{batch_id}").json()["tier_tasks"][0])


def test_a_killed_ray_actor_is_restarted_and_the_tier_completes(tmp_path: Path, ray_chunk_runner: Any) -> None:
    objects, sentences = 60, 6
    settings = Settings(
        data_dir=tmp_path / "data",
        api_key=ADMIN_KEY,
        task_poll_interval_s=0.05,
        manifest_chunk_rows=4,
        extract_batch_size=4,
    )
    with _api(settings, ray_chunk_runner) as (client, runtime):
        client.post("/v1/namespaces", json={"namespace_name": "main"})
        bucket_id = make_bucket(client)
        collection = text_collection(
            client,
            "sentences",
            {"type": "bucket", "bucket_ids": [bucket_id]},
            split_by="sentences",
            chunk_size=1,
            model="minilm",
        )
        text = " ".join(f"Sentence number {n} of this object." for n in range(sentences))
        object_ids = [add_object(client, f"{text} Unique tail {i}.") for i in range(objects)]
        batch_id, task_id = _submit(client, object_ids)

        deadline = time.monotonic() + 120
        while (tier := _tier_state(client, batch_id))["performance"]["rows_done"] < 4:
            assert tier["status"] in ("PENDING", "IN_PROGRESS") and time.monotonic() < deadline, tier
            time.sleep(0.05)
        before = ray_chunk_runner.actor_pids()
        os.kill(next(iter(before.values())), signal.SIGKILL)  # the actor's worker process, mid-tier
        killed_while = _tier_state(client, batch_id)["status"]

        assert wait_task(client, task_id, timeout=180)["status"] == "COMPLETED"
        tier = _tier_state(client, batch_id)
        logs = client.get(f"/v1/buckets/docs/batches/{batch_id}/logs").json()["tiers"][0]["logs"]
        documents = runtime.index.query(collection["collection_id"], None)

    assert killed_while == "IN_PROGRESS"
    # Ray recovered inside the tier: a restarted actor, the same lease, one attempt.
    assert tier["performance"]["attempts"] == 1 and tier["status"] == "COMPLETED"
    after = ray_chunk_runner.actor_pids()
    assert set(after) == set(before) and set(after.values()).isdisjoint(before.values())
    pids = {line.split(" pid ")[1].split()[0] for line in logs if line.startswith("actor ")}
    assert len(pids) >= 2  # chunks ran on the killed process and on its replacement
    # Nothing lost, nothing doubled: each object's sentences once.
    assert len(documents) == objects * (sentences + 1)
    assert len({d.document_id for d in documents}) == len(documents)
    chunks = {(d.lineage["root_object_id"], d.payload.get("chunk_index")) for d in documents}
    assert len(chunks) == len(documents)
