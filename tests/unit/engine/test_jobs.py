"""The background job runner: claim under a lease, run the handler its table names, finish once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from strataflow.blobs.local import LocalBlobStore
from strataflow.clock import utcnow
from strataflow.config import Settings
from strataflow.engine.jobs import LEASE, JobContext, JobOutcome, JobRunner, extend_lease
from strataflow.services.tenancy.auth import create_organization
from strataflow.services.tenancy.tasks import create_task, kill_task
from strataflow.statuses import Status, TaskType
from strataflow.store.db import Database
from strataflow.store.tables import StatusEvent, Task


def _context(db: Database, tmp_path: Path) -> JobContext:
    blobs = LocalBlobStore(tmp_path / "blobs", b"s" * 32, "http://x")
    return JobContext(db=db, blobs=blobs, settings=Settings(data_dir=tmp_path / "data"))


def _task(db: Database, task_type: TaskType = TaskType.BUCKETS_DELETE) -> tuple[str, str]:
    with db.transaction() as session:
        org = create_organization(session, "o")
        return org.org_id, create_task(session, org.org_id, task_type, inputs=[{"n": 1}]).task_id


def _runner(context: JobContext, handlers: dict[str, object], owner: str = "host-a:1") -> JobRunner:
    runner = JobRunner(context, handlers, threads=1, poll_interval_s=0.05)  # type: ignore[arg-type]
    runner.owner = owner
    return runner


def test_a_job_runs_once_and_finishes_with_its_outcome(db: Database, tmp_path: Path) -> None:
    _, task_id = _task(db)
    seen: list[tuple[str, int, str | None]] = []

    def handler(context: JobContext, task: Task) -> JobOutcome:
        seen.append((task.task_id, task.attempts, task.lease_owner))
        return JobOutcome(Status.COMPLETED, outputs=[{"deleted": 1}], additional_data={"note": "done"})

    runner = _runner(_context(db, tmp_path), {TaskType.BUCKETS_DELETE: handler})
    assert runner.run_pending() == 1
    assert runner.run_pending() == 0  # finished work is never claimed again
    assert seen == [(task_id, 1, "host-a:1")]
    with db.read_session() as session:
        task = session.get(Task, task_id)
        assert task is not None
        assert (task.status, task.outputs, task.lease_owner, task.lease_expires_at) == (
            Status.COMPLETED,
            [{"deleted": 1}],
            None,
            None,
        )
        assert task.additional_data["note"] == "done"
        moves = session.execute(
            select(StatusEvent.from_status, StatusEvent.to_status)
            .where(StatusEvent.entity_id == task_id)
            .order_by(StatusEvent.event_id)
        ).all()
        assert [tuple(m) for m in moves] == [(None, "PENDING"), ("PENDING", "PROCESSING"), ("PROCESSING", "COMPLETED")]


def test_only_the_types_in_its_table_are_claimed(db: Database, tmp_path: Path) -> None:
    _, task_id = _task(db, TaskType.NAMESPACES_DELETE)
    runner = _runner(_context(db, tmp_path), {TaskType.BUCKETS_DELETE: lambda c, t: JobOutcome(Status.COMPLETED)})
    assert runner.handled_types() == [TaskType.BUCKETS_DELETE]
    assert runner.run_pending() == 0
    with db.read_session() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.status is Status.PENDING


def test_a_handler_that_raises_fails_its_task_with_the_error(db: Database, tmp_path: Path) -> None:
    _, task_id = _task(db)

    def handler(context: JobContext, task: Task) -> JobOutcome:
        raise ValueError("no such bucket")

    assert _runner(_context(db, tmp_path), {TaskType.BUCKETS_DELETE: handler}).run_pending() == 1
    with db.read_session() as session:
        task = session.get(Task, task_id)
        assert task is not None
        assert task.status is Status.FAILED
        assert task.error is not None and "ValueError" in task.error  # the type; the text stays in the log


def test_a_task_killed_while_it_runs_stays_canceled(db: Database, tmp_path: Path) -> None:
    org_id, task_id = _task(db)

    def handler(context: JobContext, task: Task) -> JobOutcome:
        with context.db.session() as session:  # DELETE /v1/tasks/{id} arrives meanwhile
            assert kill_task(session, org_id, task.task_id, {}) is True
        return JobOutcome(Status.COMPLETED)

    assert _runner(_context(db, tmp_path), {TaskType.BUCKETS_DELETE: handler}).run_pending() == 1
    with db.read_session() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.status is Status.CANCELED
    with db.session() as session:
        assert kill_task(session, org_id, task_id, {}) is False  # finished: nothing left to stop


def test_an_expired_lease_is_taken_over(db: Database, tmp_path: Path) -> None:
    _, task_id = _task(db)
    runs: list[str] = []

    def stuck(context: JobContext, task: Task) -> JobOutcome:  # its process "dies": the lease runs out
        with context.db.transaction() as session:
            row = session.get(Task, task.task_id)
            assert row is not None
            row.lease_expires_at = utcnow() - timedelta(seconds=1)
            row.lease_owner = "host-gone:9"
        runs.append("first")
        return JobOutcome(Status.COMPLETED)

    first = _runner(_context(db, tmp_path), {TaskType.BUCKETS_DELETE: stuck}, owner="host-a:1")
    claimed = first._claim()  # one claim and run (run_pending would claim the expired task again)
    assert claimed == task_id
    first._run(claimed)  # its finish is refused: the lease is no longer its own
    with db.read_session() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.status is Status.PROCESSING

    def works(context: JobContext, task: Task) -> JobOutcome:
        runs.append(f"second, attempt {task.attempts}")
        return JobOutcome(Status.COMPLETED)

    assert _runner(_context(db, tmp_path), {TaskType.BUCKETS_DELETE: works}, owner="host-b:2").run_pending() == 1
    assert runs == ["first", "second, attempt 2"]
    with db.read_session() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.status is Status.COMPLETED


def test_only_the_owner_extends_a_running_lease(db: Database, tmp_path: Path) -> None:
    _, task_id = _task(db)
    answers: list[bool] = []

    def handler(context: JobContext, task: Task) -> JobOutcome:
        answers.append(extend_lease(context.db, task.task_id, "host-b:2"))
        answers.append(extend_lease(context.db, task.task_id, None))
        answers.append(extend_lease(context.db, task.task_id, task.lease_owner))
        return JobOutcome(Status.COMPLETED)

    before = utcnow()
    assert _runner(_context(db, tmp_path), {TaskType.BUCKETS_DELETE: handler}).run_pending() == 1
    assert answers == [False, False, True]
    assert extend_lease(db, task_id, "host-a:1") is False  # finished: no lease to extend
    assert LEASE > timedelta(0) and before < utcnow()


# SQLite only: PostgreSQL's claim never waited (FOR UPDATE SKIP LOCKED), and locks nothing when idle.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_idle_poll_does_not_wait_for_the_write_lock(db: Database, tmp_path: Path) -> None:
    """With nothing to claim, a poll only reads: a writer holding SQLite's one write lock does not
    hold it up (it used to wait up to the busy timeout for the lock, on every poll)."""
    runner = _runner(_context(db, tmp_path), {TaskType.BUCKETS_DELETE: lambda c, t: JobOutcome(Status.COMPLETED)})
    _task(db)
    assert runner.run_pending() == 1
    with db.transaction() as writer:
        writer.execute(text("UPDATE tasks SET status = status"))  # SQLite's write lock, held
        assert runner.run_pending() == 0
