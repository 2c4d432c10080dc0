"""Fenced ownership: once a tier (or a job) is taken over, its old holder's writes are refused,
and the new holder resumes after the last chunk the old one committed."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from strataflow.clock import utcnow
from strataflow.engine.fencing import LeaseLost, TierFence
from strataflow.engine.jobs import JobOutcome, extend_lease
from strataflow.engine.scheduler import Scheduler
from strataflow.engine.tiers.job import ChunkCommit, TierResult
from strataflow.runtime import Runtime
from strataflow.statuses import Status
from strataflow.store.tables import BatchTier, Task
from tests.collection_flows import add_object, make_bucket, text_collection

OBJECTS = 8  # two sentences each; with 2-row chunks the tier commits 4 chunks


class Crash(BaseException):
    """The worker dies here: nothing after this point runs (a BaseException, so no handler records it)."""


def _batch(client: TestClient, runtime: Runtime) -> tuple[str, str]:
    runtime.stop_background()  # the test claims and runs tiers itself
    bucket_id = make_bucket(client)
    collection = text_collection(
        client,
        "sentences",
        {"type": "bucket", "bucket_ids": [bucket_id]},
        split_by="sentences",
        chunk_size=1,
        model="wordllama",
    )
    object_ids = [add_object(client, f"Object {i} begins. Object {i} ends.", title=f"t{i}") for i in range(OBJECTS)]
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()
    assert client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).status_code == 200
    return batch["batch_id"], collection["collection_id"]


def _expire(runtime: Runtime, batch_id: str) -> None:
    with runtime.db.transaction() as session:
        session.execute(
            update(BatchTier)
            .where(BatchTier.batch_id == batch_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def _tier(runtime: Runtime, batch_id: str) -> BatchTier:
    with runtime.db.read_session() as session:
        tier = session.get(BatchTier, (batch_id, 0))
        assert tier is not None
        session.expunge(tier)
        return tier


def _scheduler(runtime: Runtime) -> Scheduler:
    """A second scheduler, as another worker would run it (same database, its own claims)."""
    executor = runtime.scheduler.executor
    executor.settings = runtime.settings.model_copy(update={"manifest_chunk_rows": 2, "extract_batch_size": 2})  # type: ignore[attr-defined]
    return Scheduler(runtime.db, executor, lease_s=30)


def test_a_stale_token_can_write_nothing(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> None:
    batch_id, collection_id = _batch(client, runtime)
    old, new = _scheduler(runtime), _scheduler(runtime)
    stale = old.claim()
    assert stale is not None and stale.token == 1
    assert new.claim() is None  # the lease is alive: nobody else takes the tier
    _expire(runtime, batch_id)  # the holder went quiet past its lease
    current = new.claim()
    assert current is not None and current.token == 2
    assert not stale.holds() and current.holds()

    # Progress, chunk commits (with their failure rows), the guard of index writes, the end: all refused.
    def record(session: Any) -> None:
        raise AssertionError("a stale commit must not reach its writes")

    with pytest.raises(LeaseLost):
        old._commit(stale, ChunkCommit(5, 8, {"documents_written": 99}, {"collections": {}}, record))
    with pytest.raises(LeaseLost):
        stale.check()
    old._finish(stale, TierResult(rows_total=8, rows_failed=0), None)
    tier = _tier(runtime, batch_id)
    assert (tier.status, tier.fence_token, tier.rows_done, tier.checkpoint) == ("IN_PROGRESS", 2, 0, {})
    assert (tier.counters or {}).get("documents_written") is None
    assert runtime.index.count(collection_id) == 0

    new.run(current)  # the current holder runs and ends the tier
    tier = _tier(runtime, batch_id)
    assert tier.status == "COMPLETED" and tier.counters["documents_written"] == 2 * OBJECTS
    assert runtime.index.count(collection_id) == 2 * OBJECTS
    old._finish(stale, None, "a late failure")  # a stale end changes nothing, even after completion
    assert _tier(runtime, batch_id).status == "COMPLETED"
    assert client.get(f"/v1/buckets/docs/batches/{batch_id}").json()["status"] == "COMPLETED"


def test_a_taken_over_tier_resumes_after_the_last_committed_chunk(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    batch_id, collection_id = _batch(client, runtime)
    first, second = _scheduler(runtime), _scheduler(runtime)
    commits: list[tuple[int, int, int]] = []  # (token, rows_done, documents_written) of every commit

    def recording(scheduler: Scheduler, crash_after: int | None) -> None:
        original = scheduler._commit

        def commit(fence: TierFence, chunk: ChunkCommit) -> None:
            original(fence, chunk)
            commits.append((fence.token, chunk.rows_done, chunk.counters.get("documents_written", -1)))
            if crash_after is not None and sum(1 for c in commits if c[0] == fence.token) > crash_after:
                raise Crash

        scheduler._commit = commit  # type: ignore[method-assign]

    recording(first, crash_after=2)  # the initial report and two chunks, then the worker dies
    recording(second, crash_after=None)
    claim = first.claim()
    assert claim is not None
    with pytest.raises(Crash):
        first.run(claim)
    died = _tier(runtime, batch_id)
    assert died.status == "IN_PROGRESS" and died.rows_done == 4
    assert died.checkpoint["collections"][collection_id]["rows_read"] == 4

    _expire(runtime, batch_id)
    taken = second.claim()
    assert taken is not None and taken.token == 2
    second.run(taken)

    resumed = [c for c in commits if c[0] == 2]
    assert resumed[0] == (2, 4, 8)  # it starts where the dead worker's last commit left off, not at 0
    assert [c[1] for c in resumed] == [4, 6, 8]  # the two remaining chunks, not the four
    assert all(later[2] >= earlier[2] for earlier, later in pairwise(commits))
    tier = _tier(runtime, batch_id)
    assert tier.status == "COMPLETED" and tier.attempts == 2
    assert (tier.rows_done, tier.counters["documents_written"]) == (OBJECTS, 2 * OBJECTS)
    roots = [
        d["_internal"]["lineage"]["root_object_id"]
        for d in client.post(f"/v1/collections/{collection_id}/documents/list?limit=1000", json={}).json()["results"]
    ]
    assert sorted(roots.count(r) for r in set(roots)) == [2] * OBJECTS  # each object's documents, once


def test_a_stale_job_claim_cannot_finish_or_renew(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    runtime.stop_background()
    make_bucket(client, "doomed")
    task_id = client.delete("/v1/buckets/doomed").json()["task_id"]
    jobs = runtime.jobs
    assert jobs._claim() == task_id
    with runtime.db.transaction() as session:
        task = session.get(Task, task_id)
        assert task is not None
        stale_token, task.lease_expires_at = task.fence_token, utcnow() - timedelta(seconds=1)
    assert jobs._claim() == task_id  # taken over (by this very process: only the token tells them apart)
    assert not extend_lease(runtime.db, task_id, jobs.owner, stale_token)
    jobs._finish(task_id, stale_token, JobOutcome(status=Status.FAILED, error="stale"))
    with runtime.db.read_session() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.status == "PROCESSING" and task.fence_token == stale_token + 1
    jobs._finish(task_id, stale_token + 1, JobOutcome(status=Status.COMPLETED))
    assert client.get(f"/v1/tasks/{task_id}").json()["status"] == "COMPLETED"
