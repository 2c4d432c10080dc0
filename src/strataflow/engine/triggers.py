"""The trigger loop: fires due triggers (interval, cron, event, conditional) through the action their
target registered. A conditional trigger's slot is a check: the claimer fires it only when its
condition holds (services/triggers/conditions.py).

`next_run_at` is both the schedule and the claim: a firer moves it to the next slot with a
conditional UPDATE (`WHERE next_run_at = <the slot it read>`), so of several processes exactly one
fires each slot. Missed slots (a stopped server) are not replayed: the next slot counts from now.
What firing does is the action's business (`runtime.TRIGGER_ACTIONS`, by target type); it returns
the id of the job it started, or raises a StrataflowError saying why it started none (recorded as
a skip: a cluster still running its last run is not a failure).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import select, update

from strataflow.clock import utcnow
from strataflow.engine.jobs import JobContext
from strataflow.engine.loops import PollingLoop
from strataflow.errors import StrataflowError
from strataflow.services.triggers import conditions
from strataflow.services.triggers.crud import trigger_event
from strataflow.services.triggers.schedule import next_fire
from strataflow.store.tables import Trigger, TriggerFiring
from strataflow.transitions import move_trigger

log = logging.getLogger("strataflow.triggers")

TriggerAction = Callable[[JobContext, Trigger], str]
# A watcher is polled with the triggers and starts jobs on events it notices itself (a finished
# batch, for clusters that auto-execute); it returns how many it started.
Watcher = Callable[[], int]
WatcherFactory = Callable[[JobContext], Watcher]
MAX_FAILURES = 5  # consecutive failed firings before a trigger is marked failed and stops


class TriggerLoop(PollingLoop):
    def __init__(
        self,
        context: JobContext,
        actions: Mapping[str, TriggerAction],
        poll_interval_s: float,
        watchers: Mapping[str, WatcherFactory] | None = None,
        sweeps: Sequence[Callable[[JobContext], int]] = (),
    ) -> None:
        super().__init__("strataflow-triggers", 1, poll_interval_s)
        self.context = context
        self.actions = dict(actions)
        self.watchers = {name: make(context) for name, make in (watchers or {}).items()}
        self.sweeps = list(sweeps)  # other due work found by polling (alerts pending after ingest)

    def run_pending(self) -> int:
        """Fire every trigger due now, then the watchers and the sweeps; returns how much ran (tests call this)."""
        ran = self.fire_due()
        for name, watch in self.watchers.items():
            try:
                ran += watch()
            except Exception:  # a broken watcher must not stop the schedules
                log.exception("trigger watcher failed", extra={"watcher": name})
        for sweep in self.sweeps:
            try:
                ran += sweep(self.context)
            except Exception:  # a broken sweep must not stop the triggers
                log.exception("trigger loop sweep failed")
        return ran

    def fire_due(self) -> int:
        """Fire every trigger due now; returns how many fired."""
        with self.context.db.read_session() as session:
            due = list(
                session.execute(
                    select(Trigger.trigger_id, Trigger.next_run_at)
                    .where(
                        Trigger.status == "active",
                        Trigger.next_run_at <= utcnow(),
                        Trigger.target_type.in_(sorted(self.actions)),
                    )
                    .order_by(Trigger.next_run_at)
                    .limit(50)
                ).all()
            )
        fired = 0
        for trigger_id, slot in due:
            trigger = self._claim(trigger_id, slot)
            if trigger is not None and (trigger.trigger_type != "conditional" or self._holds(trigger)):
                self._fire(trigger)
                fired += 1
        return fired

    def _holds(self, trigger: Trigger) -> bool:
        """A conditional trigger's check, made by the process that claimed the slot."""
        try:
            with self.context.db.transaction() as session:
                row = session.get(Trigger, trigger.trigger_id)
                if row is None:
                    return False
                fire, _measured = conditions.check(session, self.context.services.get("index"), row)
                return fire
        except Exception:  # a check that breaks is a check that did not hold; the next slot tries again
            log.exception("trigger condition check failed", extra={"trigger_id": trigger.trigger_id})
            return False

    def _claim(self, trigger_id: str, slot: object) -> Trigger | None:
        with self.context.db.transaction() as session:
            row = session.get(Trigger, trigger_id)
            if row is None or row.next_run_at is None:
                return None
            now = utcnow()
            following = next_fire(row.trigger_type, row.schedule_config, now)
            values: dict[str, object] = {"next_run_at": following, "last_triggered_at": now}
            if row.trigger_type == "event":
                values["pending_events"] = 0  # the events counted so far are this firing's
            claimed = session.execute(
                update(Trigger)
                .where(Trigger.trigger_id == trigger_id, Trigger.next_run_at == slot, Trigger.status == "active")
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None  # another process fired this slot, or it was paused meanwhile
            session.refresh(row)
            session.expunge(row)
            return row

    def fire_now(self, trigger: Trigger) -> tuple[str, str | None, str | None]:
        """Fire a trigger at once, off its schedule (execute-now); its next slot is unchanged."""
        with self.context.db.transaction() as session:
            row = session.get(Trigger, trigger.trigger_id)
            if row is not None:
                row.last_triggered_at = utcnow()
        return self._fire(trigger)

    def _fire(self, trigger: Trigger) -> tuple[str, str | None, str | None]:
        status, job_id, error = "queued", None, None
        try:
            job_id = self.actions[trigger.target_type](self.context, trigger)
        except StrataflowError as exc:
            status, error = "skipped", exc.message
        except Exception as exc:  # a broken action must not stop the loop; the firing records it
            log.exception("trigger action failed", extra={"trigger_id": trigger.trigger_id})
            status, error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        with self.context.db.transaction() as session:
            session.add(TriggerFiring(trigger_id=trigger.trigger_id, status=status, job_id=job_id, error=error))
            row = session.get(Trigger, trigger.trigger_id)
            if row is None:
                return status, job_id, error
            row.last_status, row.last_error = status, error
            if job_id is not None:
                row.last_job_id, row.execution_count = job_id, row.execution_count + 1
            row.consecutive_failures = row.consecutive_failures + 1 if status == "failed" else 0
            trigger_event(session, "trigger.fired", row, firing_status=status, job_id=job_id, error=error)
            if status == "failed":
                trigger_event(session, "trigger.execution.failed", row, job_id=job_id, error=error)
            if row.consecutive_failures >= MAX_FAILURES:
                move_trigger(session, row, "failed", f"{MAX_FAILURES} failures in a row")
                row.next_run_at = None
        return status, job_id, error
