"""A firing's job ended: `trigger.execution.completed` or `trigger.execution.failed`, once each.

A trigger's action queues a job (a task) and returns; the job ends later, in whatever process runs
it. Some actions run inline instead (an alert evaluation: its job id names the execution record,
not a task), and their firing is done when it is recorded. The trigger loop's sweep
(runtime.TRIGGER_SWEEPS) finds firings whose job is over and not yet settled, marks each settled
with a conditional UPDATE, and records the event in the same transaction: several processes may
sweep at once, and each firing is announced exactly once. A COMPLETED or COMPLETED_WITH_ERRORS
task completed the execution; FAILED or CANCELED failed it.
"""

from __future__ import annotations

from sqlalchemy import or_, select, update

from strataflow.clock import as_utc, utcnow
from strataflow.engine.jobs import JobContext
from strataflow.services.triggers.crud import trigger_event
from strataflow.statuses import TERMINAL, Status
from strataflow.store.tables import Task, Trigger, TriggerFiring

BATCH = 200  # firings settled per sweep; a larger backlog is worked off over the next polls
SUCCEEDED = (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS)


def settle_firings(context: JobContext) -> int:
    """Announce the end of the jobs that trigger firings started; returns how many were settled."""
    with context.db.read_session() as session:
        ended = session.execute(
            select(TriggerFiring.firing_id)
            .outerjoin(Task, Task.task_id == TriggerFiring.job_id)
            .where(
                TriggerFiring.settled_at.is_(None),
                TriggerFiring.job_id.is_not(None),
                or_(Task.task_id.is_(None), Task.status.in_(list(TERMINAL))),  # inline, or its task ended
            )
            .order_by(TriggerFiring.firing_id)
            .limit(BATCH)
        ).scalars()
        firing_ids = list(ended)
    settled = 0
    for firing_id in firing_ids:
        with context.db.transaction() as session:
            now = utcnow()
            won = session.execute(
                update(TriggerFiring)
                .where(TriggerFiring.firing_id == firing_id, TriggerFiring.settled_at.is_(None))
                .values(settled_at=now)
                .execution_options(synchronize_session=False)
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another process settled it
            firing = session.get(TriggerFiring, firing_id)
            trigger = session.get(Trigger, firing.trigger_id) if firing is not None else None
            if firing is None or trigger is None:
                continue
            task = session.get(Task, firing.job_id) if firing.job_id else None
            fired_at = as_utc(firing.fired_at)
            if task is None:  # an inline action: it had run when its firing was recorded
                event, job_status, elapsed_ms, error = "trigger.execution.completed", Status.COMPLETED, None, None
            else:
                event = "trigger.execution.completed" if task.status in SUCCEEDED else "trigger.execution.failed"
                ended_at = as_utc(task.updated_at)  # a terminal task is not updated again
                elapsed_ms = max(0, int((ended_at - fired_at).total_seconds() * 1000))
                job_status, error = task.status, task.error
            trigger_event(
                session,
                event,
                trigger,
                job_id=firing.job_id,
                job_status=job_status,
                triggered_at=fired_at.isoformat(),
                execution_time_ms=elapsed_ms,
                error=error,
            )
            settled += 1
    return settled
