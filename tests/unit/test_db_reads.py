"""The read connections of `store/db.py`: what each sends to SQLite around the caller's statement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from strataflow.store.db import Database


def _statements(db: Database) -> list[str]:
    sent: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    return sent


def test_a_single_read_sends_no_begin_and_a_read_connection_a_deferred_one(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        sent = _statements(db)
        with db.single_read_connection() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
        assert sent == ["SELECT 1"]
        sent.clear()
        with db.read_connection() as connection:
            connection.execute(text("SELECT 1"))
        assert sent == ["BEGIN", "SELECT 1"]
    finally:
        db.dispose()


def test_a_single_read_sees_what_was_committed_before_it(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with db.engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (v INTEGER)"))
        for value in (1, 2):
            with db.engine.begin() as connection:
                connection.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})
            with db.single_read_connection() as connection:
                assert connection.execute(text("SELECT max(v) FROM t")).scalar() == value
    finally:
        db.dispose()
