"""The one governed place where any entity's status changes, its creation included.

Every kind of entity with a status has a `Machine`: the statuses it may be
created in (a creation is a move from nothing) and the moves it allows after.
Nothing else in the code writes a status, or the lease and timing details that
go with a move (lease owner and expiry, attempts, started / completed times):
`tests/unit/test_status_rule.py` walks the syntax tree of src/ and fails on any
such write outside this module.

- `create` records an entity's first status, with its event.
- `try_transition` answers ACCEPTED (moved, event recorded), UNCHANGED (already
  there) or REJECTED (the machine does not allow it; nothing written), so a
  caller never has to check first whether a move is allowed.
- `transition` is the strict form, for moves that must be allowed: a refused
  move raises InvalidTransitionError.
- `claim`, `renew_lease`, `release_lease` put work under a lease and take it off.

The caller owns the transaction: a status, its details and its event commit together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import update
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.errors import InvalidTransitionError
from strataflow.statuses import Status
from strataflow.store.tables import (
    AlertIngestClaim,
    Batch,
    BatchTier,
    Bucket,
    BucketObject,
    ClusterRun,
    Namespace,
    RetrieverEvaluation,
    RetrieverExecution,
    StatusEvent,
    Task,
    Trigger,
    Upload,
    WebhookDelivery,
)

S = Status
_FINISH = frozenset({S.COMPLETED, S.COMPLETED_WITH_ERRORS, S.FAILED, S.CANCELED})
# fence_token: grows by one with each claim, so a taken-over holder's writes are refused (engine/fencing.py).
LEASE_DETAILS = frozenset({"lease_owner", "lease_expires_at", "attempts", "fence_token"})
TIMING_DETAILS = frozenset({"started_at", "completed_at", "submitted_at", "verified_at"})
# The attributes only this module writes (the status rule test reads this set).
GOVERNED_ATTRIBUTES = frozenset({"status", *LEASE_DETAILS, "started_at", "completed_at", "submitted_at"})

E = TypeVar("E")


class Verdict(StrEnum):
    ACCEPTED = "accepted"  # moved: the new status, its details and its event are written
    UNCHANGED = "unchanged"  # already in that status: nothing written
    REJECTED = "rejected"  # the machine does not allow the move: nothing written


@dataclass(frozen=True)
class Machine:
    """The statuses one kind of entity may be created in, and the moves it allows after."""

    kind: str
    id_attribute: str
    initial: frozenset[Status]
    moves: Mapping[Status, frozenset[Status]]
    details: frozenset[str] = frozenset()  # attributes a move may set beside the status

    def allows(self, current: Status | None, target: Status) -> bool:
        """Whether `current -> target` is a move of this machine (`current` None: a creation)."""
        if current is None:
            return target in self.initial
        return target in self.moves.get(current, frozenset())

    @property
    def statuses(self) -> frozenset[Status]:
        named = set(self.initial) | set(self.moves)
        for targets in self.moves.values():
            named |= targets
        return frozenset(named)


TASK = Machine(
    kind="task",
    id_attribute="task_id",
    initial=frozenset({S.PENDING}),
    moves={
        # A worker that loses its lease hands the task back to PENDING.
        S.PENDING: frozenset({S.IN_PROGRESS, S.PROCESSING, *_FINISH}),
        S.IN_PROGRESS: frozenset({S.PENDING, S.PROCESSING, *_FINISH}),
        S.PROCESSING: frozenset({S.PENDING, S.IN_PROGRESS, *_FINISH}),
    },
    details=LEASE_DETAILS,
)

# Batches and tiers: the contract's lifecycle. The only ways out of a finished state are
# explicit requests: a retry or heal round (batch or tier: FAILED / COMPLETED_WITH_ERRORS /
# COMPLETED -> IN_PROGRESS, and CANCELED -> IN_PROGRESS when a canceled tier is retried), and a
# resubmit (any finished batch -> PENDING to re-run from a tier, or -> DRAFT to be submitted again).
# Tasks never leave a terminal state, so a retry or resubmit opens new tasks; the old ones stay.
_RESUBMIT = frozenset({S.PENDING, S.DRAFT})
BATCH = Machine(
    kind="batch",
    id_attribute="batch_id",
    initial=frozenset({S.DRAFT}),
    moves={
        S.DRAFT: frozenset({S.PENDING, S.CANCELED}),
        S.PENDING: frozenset({S.IN_PROGRESS, S.CANCELED, S.FAILED}),
        S.IN_PROGRESS: frozenset({S.COMPLETED, S.COMPLETED_WITH_ERRORS, S.FAILED, S.CANCELED}),
        S.FAILED: frozenset({S.IN_PROGRESS, *_RESUBMIT}),
        S.COMPLETED_WITH_ERRORS: frozenset({S.IN_PROGRESS, *_RESUBMIT}),
        S.CANCELED: frozenset({S.IN_PROGRESS, *_RESUBMIT}),
        S.COMPLETED: frozenset({S.IN_PROGRESS, *_RESUBMIT}),  # a heal re-runs rows a completed tier lost
    },
    details=frozenset({"submitted_at", "completed_at"}),
)

TIER = Machine(
    kind="tier",
    id_attribute="tier_key",
    initial=frozenset({S.PENDING}),
    moves={
        S.PENDING: frozenset({S.IN_PROGRESS, S.CANCELED}),
        S.IN_PROGRESS: frozenset({S.PENDING, S.COMPLETED, S.COMPLETED_WITH_ERRORS, S.FAILED, S.CANCELED}),
        # Retry rounds: a failed tier re-runs its failed rows; a later tier re-runs
        # the roots those rows lead to, so a completed tier may be queued again. A canceled
        # tier is queued again when it is retried (or its batch resubmitted).
        S.FAILED: frozenset({S.PENDING}),
        S.COMPLETED_WITH_ERRORS: frozenset({S.PENDING}),
        S.COMPLETED: frozenset({S.PENDING}),
        S.CANCELED: frozenset({S.PENDING}),
    },
    details=LEASE_DETAILS | {"started_at", "completed_at"},
)

# An upload waits for its bytes (PENDING), may be confirmed in the background
# (PROCESSING), and ends COMPLETED, FAILED (expired, or a background confirm
# failed) or CANCELED (deleted). A synchronous confirm that finds the wrong
# bytes changes nothing, so the client can PUT again and retry. An upload whose
# unique key already names an object is recorded SKIPPED and never signed.
UPLOAD = Machine(
    kind="upload",
    id_attribute="upload_id",
    initial=frozenset({S.PENDING, S.SKIPPED}),
    moves={
        S.PENDING: frozenset({S.PROCESSING, S.COMPLETED, S.FAILED, S.CANCELED}),
        S.PROCESSING: frozenset({S.COMPLETED, S.FAILED}),
    },
    details=frozenset({"completed_at", "verified_at"}),
)

# Buckets and namespaces are ACTIVE until a delete request archives them (hidden
# at once); the background job then removes them, rows included.
BUCKET = Machine(
    kind="bucket", id_attribute="bucket_id", initial=frozenset({S.ACTIVE}), moves={S.ACTIVE: frozenset({S.ARCHIVED})}
)
NAMESPACE = Machine(
    kind="namespace",
    id_attribute="namespace_id",
    initial=frozenset({S.ACTIVE}),
    moves={S.ACTIVE: frozenset({S.ARCHIVED})},
)

# A bucket object is recorded as the contract's DRAFT and stays so: processing
# state lives on its batches and documents, not on the object.
OBJECT = Machine(kind="object", id_attribute="object_id", initial=frozenset({S.DRAFT}), moves={})

# A cluster run is queued (PENDING), runs on the engine (PROCESSING) and ends COMPLETED, FAILED or
# CANCELED; a finished run never changes again (executing again opens a new run).
CLUSTER_RUN = Machine(
    kind="cluster_run",
    id_attribute="run_id",
    initial=frozenset({S.PENDING}),
    details=frozenset({"started_at", "completed_at", "error"}),
    moves={
        S.PENDING: frozenset({S.PROCESSING, S.FAILED, S.CANCELED}),
        S.PROCESSING: frozenset({S.PENDING, S.COMPLETED, S.FAILED, S.CANCELED}),
    },
)

# A retriever execution is recorded once, when it ends: COMPLETED, COMPLETED_WITH_ERRORS (the time
# budget ran out and later stages were skipped: "partial" on the wire) or FAILED. It never moves after.
RETRIEVER_EXECUTION = Machine(
    kind="retriever_execution",
    id_attribute="execution_id",
    initial=frozenset({S.COMPLETED, S.COMPLETED_WITH_ERRORS, S.FAILED}),
    moves={},
    details=frozenset({"completed_at"}),
)

# An evaluation run is queued with its task (PENDING), runs in the background (IN_PROGRESS) and ends
# COMPLETED or FAILED; a worker that dies mid-run leaves it IN_PROGRESS and the retried task starts it over.
EVALUATION = Machine(
    kind="evaluation",
    id_attribute="evaluation_id",
    initial=frozenset({S.PENDING}),
    moves={
        S.PENDING: frozenset({S.IN_PROGRESS, S.FAILED}),
        S.IN_PROGRESS: frozenset({S.COMPLETED, S.FAILED}),
    },
    details=frozenset({"completed_at", "error"}),
)

# A webhook delivery waits (PENDING, until `next_attempt_at`), is attempted under a lease
# (PROCESSING), and ends delivered (COMPLETED), given up (FAILED, after the last retry or on an
# answer no retry can change) or CANCELED (its webhook's channel went away). A failed attempt,
# or a holder whose lease ran out, hands it back to PENDING.
DELIVERY = Machine(
    kind="webhook_delivery",
    id_attribute="delivery_id",
    initial=frozenset({S.PENDING}),
    moves={
        S.PENDING: frozenset({S.PROCESSING, S.CANCELED}),
        S.PROCESSING: frozenset({S.PENDING, S.COMPLETED, S.FAILED, S.CANCELED}),
    },
    details=LEASE_DETAILS | {"completed_at"},
)

# An alert to evaluate after ingest waits (PENDING), is evaluated under a lease (PROCESSING) and
# ends COMPLETED in the transaction that records its execution. Documents written again put it
# back to PENDING (from COMPLETED, or from PROCESSING when that evaluation ends); a holder whose
# lease ran out hands it back to PENDING, so the evaluation is made again.
ALERT_INGEST = Machine(
    kind="alert_ingest",
    id_attribute="alert_id",
    initial=frozenset({S.PENDING}),
    moves={
        S.PENDING: frozenset({S.PROCESSING}),
        S.PROCESSING: frozenset({S.PENDING, S.COMPLETED}),
        S.COMPLETED: frozenset({S.PENDING}),
    },
    details=LEASE_DETAILS | {"completed_at"},
)

# The registration table: which machine governs which table's `status` column.
MACHINES: dict[type[Any], Machine] = {
    Task: TASK,
    Batch: BATCH,
    BatchTier: TIER,
    Upload: UPLOAD,
    Bucket: BUCKET,
    Namespace: NAMESPACE,
    BucketObject: OBJECT,
    ClusterRun: CLUSTER_RUN,
    RetrieverExecution: RETRIEVER_EXECUTION,
    RetrieverEvaluation: EVALUATION,
    WebhookDelivery: DELIVERY,
    AlertIngestClaim: ALERT_INGEST,
}


def register(model: type[Any], machine: Machine) -> None:
    """Declare the state machine that governs a table's `status` column (tests add their own)."""
    MACHINES[model] = machine


def machine_for(entity: object) -> Machine:
    try:
        return MACHINES[type(entity)]
    except KeyError as exc:
        raise TypeError(f"no state machine registered for {type(entity).__name__}") from exc


def _refusal(machine: Machine, entity: Any, current: Status | None, target: Status) -> InvalidTransitionError:
    entity_id = getattr(entity, machine.id_attribute)
    shown = current.value if current is not None else None
    return InvalidTransitionError(
        f"{machine.kind} {entity_id} cannot move from {shown or 'nothing'} to {target}",
        {"entity": machine.kind, "id": entity_id, "from": shown, "to": target.value},
    )


def _set_details(machine: Machine, entity: Any, details: Mapping[str, Any]) -> None:
    unknown = set(details) - machine.details
    if unknown:
        raise TypeError(f"a {machine.kind} move cannot set {sorted(unknown)}")
    for name, value in details.items():
        setattr(entity, name, value)


def _write(
    session: Session,
    machine: Machine,
    entity: Any,
    current: Status | None,
    target: Status,
    reason: str,
    details: Mapping[str, Any],
) -> None:
    entity.status = target
    _set_details(machine, entity, details)
    if hasattr(entity, "updated_at") and current is not None:
        entity.updated_at = utcnow()
    session.add(
        StatusEvent(
            entity_type=machine.kind,
            entity_id=getattr(entity, machine.id_attribute),
            from_status=current.value if current is not None else None,
            to_status=target.value,
            reason=reason,
        )
    )


def create(session: Session, entity: E, status: Status, reason: str, **details: Any) -> E:
    """Add a new entity in its first status (a move from nothing), with its event."""
    machine = machine_for(entity)
    if not machine.allows(None, status):
        raise _refusal(machine, entity, None, status)
    _write(session, machine, entity, None, status, reason, details)
    session.add(entity)
    return entity


def _current(machine: Machine, entity: Any) -> Status:
    if entity.status is None:
        raise TypeError(f"{machine.kind} {getattr(entity, machine.id_attribute)} was never created through create()")
    return Status(entity.status)


def try_transition(session: Session, entity: Any, target: Status, reason: str, **details: Any) -> Verdict:
    """Move `entity` to `target` when its machine allows it, and say what happened.

    `details` (lease, attempts, timings) are written with an accepted move only.
    """
    machine = machine_for(entity)
    current = _current(machine, entity)
    if current == target:
        return Verdict.UNCHANGED
    if not machine.allows(current, target):
        return Verdict.REJECTED
    _write(session, machine, entity, current, target, reason, details)
    return Verdict.ACCEPTED


def transition(session: Session, entity: Any, target: Status, reason: str, **details: Any) -> bool:
    """Move `entity` to `target`, which must be allowed. Returns False when it is already there.

    Raises InvalidTransitionError for a move the entity's machine does not allow.
    """
    verdict = try_transition(session, entity, target, reason, **details)
    if verdict is Verdict.REJECTED:
        machine = machine_for(entity)
        raise _refusal(machine, entity, _current(machine, entity), target)
    return verdict is Verdict.ACCEPTED


def claim(session: Session, entity: Any, target: Status, owner: str, lease_until: datetime, reason: str) -> Verdict:
    """Move `entity` into work under a lease held by `owner`: one more attempt, started now (the first time).

    The claim also takes the next fence token (the caller holds the row locked, so tokens never
    repeat); read it back from `entity.fence_token` after an accepted claim.
    """
    details: dict[str, Any] = {
        "lease_owner": owner,
        "lease_expires_at": lease_until,
        "attempts": (entity.attempts or 0) + 1,
        "fence_token": (entity.fence_token or 0) + 1,
    }
    if "started_at" in machine_for(entity).details and getattr(entity, "started_at", None) is None:
        details["started_at"] = utcnow()
    return try_transition(session, entity, target, reason, **details)


def renew_lease(
    session: Session,
    model: type[Any],
    ids: Mapping[str, Any],
    owner: str,
    until: datetime,
    *,
    while_status: Status | None = None,
    token: int | None = None,
) -> bool:
    """Push forward the lease `owner` holds on one row (a heartbeat); no status changes.

    One UPDATE guarded by the owner (and the status and fence token, when given), so a
    lease another process has taken is never extended. False once the lease is lost.
    """
    if "lease_expires_at" not in MACHINES[model].details:
        raise TypeError(f"{model.__name__} rows hold no lease")
    conditions = [getattr(model, name) == value for name, value in ids.items()]
    conditions.append(model.lease_owner == owner)
    if while_status is not None:
        conditions.append(model.status == while_status)
    if token is not None:
        conditions.append(model.fence_token == token)
    result = session.execute(update(model).where(*conditions).values(lease_expires_at=until))
    return bool(getattr(result, "rowcount", 0))


def release_lease(entity: Any, *, expire_now: bool = False) -> None:
    """Take the lease off an entity whose status stays as it is (work stopped, or handed over).

    `expire_now` also puts the expiry in the past, so another worker may claim the work at once.
    """
    details: dict[str, Any] = {"lease_owner": None}
    if expire_now:
        details["lease_expires_at"] = utcnow()
    _set_details(machine_for(entity), entity, details)


def released() -> dict[str, Any]:
    """The details of a move that ends work under a lease: pass as `**released()`."""
    return {"lease_owner": None, "lease_expires_at": None}


# Triggers keep the contract's lower-case states (`active`, `paused`, `disabled`, and `failed`
# once the engine gives up on one). Their moves are governed here like every other status.
TRIGGER_MOVES: dict[str | None, frozenset[str]] = {
    None: frozenset({"active", "paused", "disabled"}),  # creation
    "active": frozenset({"paused", "disabled", "failed"}),
    "paused": frozenset({"active", "disabled"}),
    "disabled": frozenset({"active", "paused"}),
    "failed": frozenset({"active", "paused", "disabled"}),
}


def move_trigger(session: Session, trigger: Trigger, state: str, reason: str) -> Verdict:
    """Set a trigger's state (creation included, when it has none yet), with its event."""
    current: str | None = trigger.status
    if current == state:
        return Verdict.UNCHANGED
    if state not in TRIGGER_MOVES.get(current, frozenset()):
        raise InvalidTransitionError(
            f"trigger {trigger.trigger_id} cannot move from {current or 'nothing'} to {state}",
            {"entity": "trigger", "id": trigger.trigger_id, "from": current, "to": state},
        )
    trigger.status = state
    if current is not None:
        trigger.updated_at = utcnow()
    session.add(
        StatusEvent(
            entity_type="trigger", entity_id=trigger.trigger_id, from_status=current, to_status=state, reason=reason
        )
    )
    return Verdict.ACCEPTED
