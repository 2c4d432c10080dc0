"""The one governed place where a task, tier or batch changes status.

Every status write goes through `transition`: it knows the allowed moves of
each kind of entity, refuses the rest, never lets a terminal state change
except along an explicit retry edge, and records why each change happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.errors import InvalidTransitionError
from strataflow.statuses import Status
from strataflow.store.tables import StatusEvent

S = Status
_FINISH = {S.COMPLETED, S.COMPLETED_WITH_ERRORS, S.FAILED, S.CANCELED}


@dataclass(frozen=True)
class Machine:
    """Allowed moves of one kind of entity: from-status -> the statuses it may go to."""

    kind: str
    id_attribute: str
    moves: Mapping[Status, frozenset[Status]]

    def allows(self, current: Status, target: Status) -> bool:
        return target in self.moves.get(current, frozenset())


TASK = Machine(
    kind="task",
    id_attribute="task_id",
    moves={
        # A worker that loses its lease hands the task back to PENDING.
        S.PENDING: frozenset({S.IN_PROGRESS, S.PROCESSING, *_FINISH}),
        S.IN_PROGRESS: frozenset({S.PENDING, S.PROCESSING, *_FINISH}),
        S.PROCESSING: frozenset({S.PENDING, S.IN_PROGRESS, *_FINISH}),
    },
)

# Batches and tiers: the contract's lifecycle. The only way out of a finished
# state is the explicit retry edge (FAILED / COMPLETED_WITH_ERRORS -> IN_PROGRESS);
# tasks never leave a terminal state, so a retry opens new tasks instead.
BATCH = Machine(
    kind="batch",
    id_attribute="batch_id",
    moves={
        S.DRAFT: frozenset({S.PENDING, S.CANCELED}),
        S.PENDING: frozenset({S.IN_PROGRESS, S.CANCELED, S.FAILED}),
        S.IN_PROGRESS: frozenset({S.COMPLETED, S.COMPLETED_WITH_ERRORS, S.FAILED, S.CANCELED}),
        S.FAILED: frozenset({S.IN_PROGRESS}),
        S.COMPLETED_WITH_ERRORS: frozenset({S.IN_PROGRESS}),
    },
)

TIER = Machine(
    kind="tier",
    id_attribute="tier_key",
    moves={
        S.PENDING: frozenset({S.IN_PROGRESS, S.CANCELED}),
        S.IN_PROGRESS: frozenset({S.PENDING, S.COMPLETED, S.COMPLETED_WITH_ERRORS, S.FAILED, S.CANCELED}),
        # Retry rounds: a failed tier re-runs its failed rows; a later tier re-runs
        # the roots those rows lead to, so a completed tier may be queued again.
        S.FAILED: frozenset({S.PENDING}),
        S.COMPLETED_WITH_ERRORS: frozenset({S.PENDING}),
        S.COMPLETED: frozenset({S.PENDING}),
    },
)


# An upload waits for its bytes (PENDING), may be confirmed in the background
# (PROCESSING), and ends COMPLETED, FAILED (expired, or a background confirm
# failed) or CANCELED (deleted). A synchronous confirm that finds the wrong
# bytes changes nothing, so the client can PUT again and retry.
UPLOAD = Machine(
    kind="upload",
    id_attribute="upload_id",
    moves={
        S.PENDING: frozenset({S.PROCESSING, S.COMPLETED, S.FAILED, S.CANCELED}),
        S.PROCESSING: frozenset({S.COMPLETED, S.FAILED}),
    },
)

# A cluster run is queued (PENDING), runs on the engine (PROCESSING) and ends COMPLETED, FAILED or
# CANCELED; a finished run never changes again (executing again opens a new run).
CLUSTER_RUN = Machine(
    kind="cluster_run",
    id_attribute="run_id",
    moves={
        S.PENDING: frozenset({S.PROCESSING, S.FAILED, S.CANCELED}),
        S.PROCESSING: frozenset({S.PENDING, S.COMPLETED, S.FAILED, S.CANCELED}),
    },
)

_MACHINES: dict[type[Any], Machine] = {}


def register(model: type[Any], machine: Machine) -> None:
    """Declare the state machine that governs a table's `status` column."""
    _MACHINES[model] = machine


def machine_for(entity: object) -> Machine:
    try:
        return _MACHINES[type(entity)]
    except KeyError as exc:
        raise TypeError(f"no state machine registered for {type(entity).__name__}") from exc


def transition(session: Session, entity: Any, target: Status, reason: str) -> bool:
    """Move `entity` to `target`. Returns False when it is already there (a no-op).

    Raises InvalidTransitionError for a move the entity's machine does not allow.
    The caller owns the transaction: the new status and its event commit together.
    """
    machine = machine_for(entity)
    current = Status(entity.status)
    if current == target:
        return False
    if not machine.allows(current, target):
        entity_id = getattr(entity, machine.id_attribute)
        raise InvalidTransitionError(
            f"{machine.kind} {entity_id} cannot move from {current} to {target}",
            {"entity": machine.kind, "id": entity_id, "from": current.value, "to": target.value},
        )
    entity.status = target.value
    if hasattr(entity, "updated_at"):
        entity.updated_at = utcnow()
    session.add(
        StatusEvent(
            entity_type=machine.kind,
            entity_id=getattr(entity, machine.id_attribute),
            from_status=current.value,
            to_status=target.value,
            reason=reason,
        )
    )
    return True


def _register_builtin() -> None:
    from strataflow.store.tables import Batch, BatchTier, ClusterRun, Task, Upload

    register(Task, TASK)
    register(Batch, BATCH)
    register(BatchTier, TIER)
    register(Upload, UPLOAD)
    register(ClusterRun, CLUSTER_RUN)


_register_builtin()
