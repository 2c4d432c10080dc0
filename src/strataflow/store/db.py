"""Engine and session factory for SQLite (embedded) and PostgreSQL (scaled out).

SQLite allows one writer. A transaction that reads and later writes can fail
immediately with SQLITE_BUSY when another writer got in between, and no busy
timeout helps. So every writing transaction starts with BEGIN IMMEDIATE (it
waits for the write lock up front), while read-only sessions use a plain
deferred BEGIN and never block in WAL mode.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, CursorResult, Delete, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from strataflow.store import regex_guard

_READONLY = "strataflow_readonly"
# A connection that runs one SELECT: SQLite reads a lone statement from one snapshot without a
# BEGIN (autocommit), so the BEGIN and its ROLLBACK would be two statements for nothing.
_SINGLE_READ = "strataflow_single_read"
# The API's thread pool (40 threads) plus the background loops: at most this many SQLite connections
# are used at once, and the usual number (requests in flight, loop threads) is well under the kept size.
SQLITE_POOL_SIZE, SQLITE_POOL_OVERFLOW = 24, 40
# A read on the server's event loop must not wait: every other request waits with it. In WAL mode a
# reader waits for nobody, except in rare moments (a checkpoint restarting the log, a recovery, a
# connection holding the file exclusively); after this long it gives up and the caller reads from
# the thread pool, where a wait stops nothing else.
EVENT_LOOP_BUSY_TIMEOUT_MS = 20


_SQLITE_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class ReadWouldWait(Exception):
    """An event-loop read found the database busy: read again where waiting is allowed."""


def _configure_sqlite(engine: Engine, busy_timeout_ms: int = 30000) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
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
            # Connections are kept, not opened per request: the default pool (5, overflow 10) closed
            # every connection beyond five, so eight concurrent polls opened a new one (and ran its
            # PRAGMAs, and prepared its statements again) on almost every request. A kept SQLite
            # connection costs a file handle and its page cache.
            kwargs.update(pool_size=SQLITE_POOL_SIZE, max_overflow=SQLITE_POOL_OVERFLOW)
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
        self._event_loop_engine = self._open_event_loop_engine() if self.is_sqlite else None

    def _open_event_loop_engine(self) -> Engine:
        """SQLite connections for reads run on the event loop: a short busy timeout, a few kept.
        No regex guard: only prebuilt statements with no user pattern run on them."""
        engine = create_engine(
            self.url,
            connect_args={"check_same_thread": False, "timeout": EVENT_LOOP_BUSY_TIMEOUT_MS / 1000},
            pool_size=2,  # one event loop reads one statement at a time; tests run several loops
            max_overflow=8,
        )
        _configure_sqlite(engine, EVENT_LOOP_BUSY_TIMEOUT_MS)
        return engine.execution_options(**{_READONLY: True, _SINGLE_READ: True})

    @property
    def reads_on_event_loop(self) -> bool:
        """Whether `event_loop_read_connection` is offered: SQLite's reads are local and, in WAL
        mode, wait for no writer; PostgreSQL's are a network round trip, for the thread pool."""
        return self._event_loop_engine is not None

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
    def event_loop_read_connection(self) -> Iterator[Connection]:
        """A connection for ONE read-only statement run on the server's event loop (SQLite only).

        The hop to the thread pool cost more than the read itself on the polling path, and the
        threads' handing the GIL back and forth around SQLite's calls more still
        (docs/performance.md). A read that would wait raises `ReadWouldWait` instead.
        """
        if self._event_loop_engine is None:
            raise RuntimeError("only SQLite reads on the event loop; check reads_on_event_loop")
        try:
            with self._event_loop_engine.connect() as connection:
                yield connection
        except OperationalError as exc:
            code = getattr(exc.orig, "sqlite_errorcode", None) or 0
            if code & 0xFF in _SQLITE_BUSY_CODES:  # the extended codes (BUSY_RECOVERY, ...) too
                raise ReadWouldWait(str(exc.orig)) from exc
            raise

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A writing session committed on success, rolled back on any error."""
        with self._writer() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self._event_loop_engine is not None:
            self._event_loop_engine.engine.dispose()


def deleted_rows(session: Session, statement: Delete) -> int:
    """Run a DELETE and say how many rows it removed."""
    result = session.execute(statement)
    return result.rowcount if isinstance(result, CursorResult) else 0
