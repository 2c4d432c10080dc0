"""The governed status transition: allowed moves, refused moves, terminal states, recorded reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from strataflow.errors import InvalidTransitionError
from strataflow.services.tenancy.auth import create_organization
from strataflow.statuses import TERMINAL, Status
from strataflow.store.db import Database
from strataflow.store.migrate import upgrade_to_head
from strataflow.store.tables import StatusEvent, Task
from strataflow.transitions import TASK, transition


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade_to_head(database)
    return database


def _task(db: Database, status: Status = Status.PENDING) -> str:
    with db.transaction() as session:
        org = create_organization(session, "o")
        session.add(Task(task_id="task_1", org_id=org.org_id, task_type="api_buckets_delete", status=status.value))
    return "task_1"


def test_allowed_move_records_its_reason(db: Database) -> None:
    task_id = _task(db)
    with db.transaction() as session:
        task = session.get(Task, task_id)
        assert transition(session, task, Status.PROCESSING, "claimed by test") is True
    with db.read_session() as session:
        assert session.get(Task, task_id).status == "PROCESSING"  # type: ignore[union-attr]
        event = session.scalar(select(StatusEvent).where(StatusEvent.entity_id == task_id))
        assert event is not None
        assert (event.entity_type, event.from_status, event.to_status, event.reason) == (
            "task",
            "PENDING",
            "PROCESSING",
            "claimed by test",
        )


def test_same_status_is_a_no_op(db: Database) -> None:
    task_id = _task(db)
    with db.transaction() as session:
        assert transition(session, session.get(Task, task_id), Status.PENDING, "again") is False
    with db.read_session() as session:
        assert session.scalar(select(StatusEvent)) is None


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_states_never_change(db: Database, terminal: Status) -> None:
    task_id = _task(db, terminal)
    for target in Status:
        if target == terminal:
            continue
        with db.session() as session:
            with pytest.raises(InvalidTransitionError) as refused:
                transition(session, session.get(Task, task_id), target, "try")
            assert refused.value.details == {
                "entity": "task",
                "id": task_id,
                "from": terminal.value,
                "to": target.value,
            }


def test_machine_table_is_what_the_contract_needs() -> None:
    assert TASK.allows(Status.PENDING, Status.CANCELED)
    assert TASK.allows(Status.PROCESSING, Status.PENDING)  # an expired lease hands work back
    assert not TASK.allows(Status.PENDING, Status.DRAFT)
    assert not any(TASK.allows(t, Status.PENDING) for t in TERMINAL)


def test_unregistered_entities_are_rejected(db: Database) -> None:
    class Stranger:
        status = "PENDING"

    with db.session() as session, pytest.raises(TypeError):
        transition(session, Stranger(), Status.COMPLETED, "nope")
