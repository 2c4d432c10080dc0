"""Engine and session factory for SQLite (embedded) and PostgreSQL (scaled out).

SQLite allows one writer. A transaction that reads and later writes can fail
immediately with SQLITE_BUSY when another writer got in between, and no busy
timeout helps. So every writing transaction starts with BEGIN IMMEDIATE (it
waits for the write lock up front), while read-only sessions use a plain
deferred BEGIN and never block in WAL mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, CursorResult, Delete, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from strataflow.store import regex_guard

_READONLY = "strataflow_readonly"
# A connection that runs one SELECT: SQLite reads a lone statement from one snapshot without a
# BEGIN (autocommit), so the BEGIN and its ROLLBACK would be two statements for nothing.
_SINGLE_READ = "strataflow_single_read"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        dbapi_connection.create_function("regexp", 2, regex_guard.sqlite_regexp, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        if options.get(_SINGLE_READ, False):
            return
        readonly = options.get(_READONLY, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


class Database:
    """Owns the engine; hands out sessions for writing and for reading."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            # A file cannot drop a connection, so no ping before each checkout (a round trip per session).
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # A server can: restarts, idle timeouts in a proxy. A pooled connection is pinged before use.
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        regex_guard.install(self.engine, self.is_sqlite)  # untrusted regex filters: bounded, clear errors
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(**{_READONLY: True})
        self._reader = sessionmaker(self._read_engine, expire_on_commit=False)
        self._single_read_engine = self.engine.execution_options(**{_READONLY: True, _SINGLE_READ: True})

    def session(self) -> Session:
        """A session for a unit of work that writes; the caller commits."""
        return self._writer()

    def read_session(self) -> Session:
        return self._reader()

    def read_connection(self) -> Connection:
        """A Core connection for a read: no ORM session to build and tear down (the polling path)."""
        return self._read_engine.connect()

    def single_read_connection(self) -> Connection:
        """A Core connection for ONE read-only statement: on SQLite, no BEGIN is issued for it (the
        statement is its own snapshot). Several statements needing one snapshot: `read_connection`."""
        return self._single_read_engine.connect()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A writing session committed on success, rolled back on any error."""
        with self._writer() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def deleted_rows(session: Session, statement: Delete) -> int:
    """Run a DELETE and say how many rows it removed."""
    result = session.execute(statement)
    return result.rowcount if isinstance(result, CursorResult) else 0
