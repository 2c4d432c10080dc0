"""The read connections of `store/db.py`: what each sends to SQLite around the caller's statement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from strataflow.store.db import Database, ReadWouldWait
from tests.helpers import ExclusiveHolder


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


def test_an_event_loop_read_of_a_busy_database_gives_up_where_a_pool_read_waits(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = Database(f"sqlite:///{path}")
    try:
        assert db.reads_on_event_loop
        with db.engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (v INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (7)"))
        db.dispose()  # a WAL connection holds a shared lock on the file while it is open
        holder = ExclusiveHolder(path, "UPDATE t SET v = v")
        with pytest.raises(ReadWouldWait), db.event_loop_read_connection() as connection:
            connection.execute(text("SELECT v FROM t")).scalar()
        releaser = holder.release_after(0.3)
        with db.single_read_connection() as connection:  # the thread-pool read waits, and reads
            assert connection.execute(text("SELECT v FROM t")).scalar() == 7
        releaser.join()
        with db.event_loop_read_connection() as connection:  # the file free again: read on the loop
            assert connection.execute(text("SELECT v FROM t")).scalar() == 7
    finally:
        db.dispose()


def test_postgresql_offers_no_event_loop_read(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        assert not db.reads_on_event_loop
        with pytest.raises(RuntimeError), db.event_loop_read_connection():
            pass
    finally:
        db.dispose()
