"""Background jobs for API tasks (deletes, batch confirms, ...), claimed from the tasks table.

The tasks table is the queue. A job is claimed with a lease; a process that
dies mid-job leaves an expired lease behind and another runner picks the task
up again, so every handler must be idempotent (at-least-once execution,
exactly-once effect). Each claim raises the task's fence token; a runner whose
claim was taken over can neither renew the lease nor finish the task (the
database refuses its token), so one outcome is recorded, by the newest claim.
The runner is handed its table of handlers (`runtime.JOB_HANDLERS`);
this module knows nothing about what a job does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, bindparam, or_, select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.clock import utcnow
from strataflow.config import Settings
from strataflow.engine.leases import owner_is_dead, process_owner
from strataflow.engine.loops import PollingLoop
from strataflow.public_errors import internal_error_message
from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.tables import Task
from strataflow.transitions import Verdict, claim, released, renew_lease, transition, try_transition

log = logging.getLogger("strataflow.jobs")

LEASE = timedelta(seconds=60)


@dataclass
class JobContext:
    """What a handler may use. Handlers open their own sessions from `db`."""

    db: Database
    blobs: BlobStore
    settings: Settings
    services: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobOutcome:
    status: Status
    outputs: list[Any] | None = None
    additional_data: dict[str, Any] | None = None
    error: str | None = None


Handler = Callable[[JobContext, Task], JobOutcome]


def _runnable_task(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """Waiting to run, or running under a lease nobody renewed."""
    return or_(Task.status == Status.PENDING, (Task.status == Status.PROCESSING) & (Task.lease_expires_at < now))


# The idle poll's two reads, built once (building a statement costs more than running it here).
_MY_TYPES = Task.task_type.in_(bindparam("types", expanding=True))
_ANY_RUNNABLE_TASK = select(Task.task_id).where(_MY_TYPES, _runnable_task(bindparam("now"))).limit(1)
_HELD_TASK_OWNERS = select(Task.lease_owner).where(
    _MY_TYPES, Task.status == Status.PROCESSING, Task.lease_owner.is_not(None)
)


class JobRunner(PollingLoop):
    """Threads that claim PENDING (or lease-expired) API tasks and run their handlers."""

    def __init__(
        self, context: JobContext, handlers: Mapping[str, Handler], threads: int, poll_interval_s: float
    ) -> None:
        super().__init__("strataflow-jobs", threads, poll_interval_s)
        self.context = context
        self.handlers = dict(handlers)
        self.owner = process_owner()

    def handled_types(self) -> list[str]:
        return sorted(self.handlers)

    def run_pending(self) -> int:
        """Claim and run jobs until none is left. Returns how many ran (tests use this)."""
        ran = 0
        while (task_id := self._claim()) is not None:
            self._run(task_id)
            ran += 1
        return ran

    def _claim(self) -> str | None:
        """Take one runnable task under a row lock (SQLite: the write lock) and lease it."""
        types = self.handled_types()
        if not types:
            return None
        now = utcnow()
        if not self._worth_a_claim(types, now):
            return None
        with self.context.db.transaction() as session:
            query = select(Task).where(Task.task_type.in_(types), _runnable_task(now))
            query = query.order_by(Task.created_at).limit(1)
            if not self.context.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            task = session.scalar(query) or self._dead_owner_task(session, types, self.context.db.is_sqlite)
            if task is None:
                return None
            if task.status == Status.PROCESSING:
                reason = "died" if owner_is_dead(task.lease_owner) else "let its lease expire"
                transition(session, task, Status.PENDING, f"{task.lease_owner} {reason}")
            claim(session, task, Status.PROCESSING, self.owner, now + LEASE, f"claimed by {self.owner}")
            return task.task_id

    def _worth_a_claim(self, types: list[str], now: datetime) -> bool:
        """A read-only look first: an idle poll takes no write lock (SQLite's is the whole database's,
        and every runner thread asked for it on every poll). What it finds is claimed, or found
        gone, under the lock; what appears just after it is found at the next poll or wake-up."""
        with self.context.db.single_read_connection() as conn:
            if conn.execute(_ANY_RUNNABLE_TASK, {"types": types, "now": now}).first() is not None:
                return True
            holders = conn.execute(_HELD_TASK_OWNERS, {"types": types}).scalars()
            return any(owner_is_dead(owner) for owner in holders)

    @staticmethod
    def _dead_owner_task(session: Session, types: list[str], is_sqlite: bool) -> Task | None:
        """A job still leased to a process of this host that no longer exists: take it now
        rather than after its lease (a restarted server resumes its batch confirms at once)."""
        query = (
            select(Task)
            .where(Task.task_type.in_(types), Task.status == Status.PROCESSING, Task.lease_owner.is_not(None))
            .order_by(Task.created_at)
        )
        dead = [(t.task_id, t.lease_owner) for t in session.scalars(query) if owner_is_dead(t.lease_owner)]
        for task_id, owner in dead:
            # Lock it, and look again: another claimer may have taken it since it was read.
            again = (
                select(Task)
                .where(Task.task_id == task_id, Task.status == Status.PROCESSING, Task.lease_owner == owner)
                .execution_options(populate_existing=True)
            )
            if not is_sqlite:  # as in the main claim: a row another claimer holds is not ours
                again = again.with_for_update(skip_locked=True)
            if (task := session.scalar(again)) is not None:
                return task
        return None

    def _run(self, task_id: str) -> None:
        with self.context.db.read_session() as session:
            task = session.get(Task, task_id)
            if task is None:
                return
            session.expunge(task)
        handler = self.handlers[task.task_type]
        log.info("job started", extra={"task_id": task_id, "task_type": task.task_type})
        try:
            outcome = handler(self.context, task)
        except Exception as exc:  # one failure path: the task records it
            log.exception("job failed", extra={"task_id": task_id})  # the traceback: in the log, never the task
            outcome = JobOutcome(status=Status.FAILED, error=internal_error_message(exc, f"the {task.task_type} task"))
        self._finish(task_id, task.fence_token, outcome)
        log.info("job finished", extra={"task_id": task_id, "status": outcome.status.value})

    def _finish(self, task_id: str, token: int, outcome: JobOutcome) -> None:
        with self.context.db.transaction() as session:
            query = select(Task).where(Task.task_id == task_id)
            task = session.scalar(query if self.context.db.is_sqlite else query.with_for_update())
            if task is None or task.fence_token != token or task.lease_owner != self.owner:
                log.warning(
                    "job taken over before its end; the new claim records the outcome",
                    extra={"task_id": task_id, "fence_token": token},
                )
                return  # deleted meanwhile, or our lease expired and another runner owns it
            verdict = try_transition(session, task, outcome.status, outcome.error or "job finished", **released())
            if verdict is not Verdict.ACCEPTED:
                return  # killed while running: the kill already set the final status
            task.outputs = outcome.outputs if outcome.outputs is not None else task.outputs
            task.additional_data = {**(task.additional_data or {}), **(outcome.additional_data or {})}
            if outcome.error:
                task.additional_data["error"] = outcome.error
                task.error = outcome.error


def extend_lease(db: Database, task_id: str, owner: str | None, token: int | None = None) -> bool:
    """Push a running task's lease forward. Long handlers call this so no other runner
    takes their task while they still work on it. False once the lease is lost (another
    claim holds the task: a newer fence token, when the caller names its own)."""
    if owner is None:
        return False
    with db.transaction() as session:
        return renew_lease(
            session, Task, {"task_id": task_id}, owner, utcnow() + LEASE, while_status=Status.PROCESSING, token=token
        )
