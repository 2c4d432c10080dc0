"""Who may write one index table at a time, across processes and hosts.

LanceDB's commit protocol keeps a table's *versions* consistent, but it does not make two
concurrent `merge_insert`s of the same new key conflict: each sees the key absent, each appends
it, and both commits succeed — the document exists twice. (Found by the two-writer test on an
index on S3.) So every write to a table runs under a lock that every writer shares:

* `FileTableLocks`: `flock` on a file per table, for the processes of one host (an index in a
  local directory, or an index on S3 whose writers share one data directory with SQLite).
* `PostgresTableLocks`: a transaction-scoped advisory lock in the deployment's PostgreSQL, which
  every API server and worker on every host already shares. The lock ends with its transaction,
  so a writer that dies mid-write (or loses its connection) cannot leave the table locked.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine


class TableLocks(Protocol):
    """An exclusive lock per table name, shared by every process that writes the index."""

    def hold(self, table: str) -> AbstractContextManager[None]: ...


class FileTableLocks:
    """One `flock`ed file per table in `directory` (a directory all writers see: one host)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def hold(self, table: str) -> Iterator[None]:
        with (self.directory / f"{table}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class PostgresTableLocks:
    """`pg_advisory_xact_lock` keyed by the index location and the table, in its own transaction."""

    def __init__(self, database_url: str, index_uri: str) -> None:
        # A small pool of its own: a write holds its connection only while it commits to Lance.
        self._engine: Engine = create_engine(database_url, pool_size=2, max_overflow=8, pool_pre_ping=True)
        self._index_uri = index_uri

    def key(self, table: str) -> int:
        digest = hashlib.blake2b(f"strataflow.index:{self._index_uri}:{table}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    @contextmanager
    def hold(self, table: str) -> Iterator[None]:
        with self._engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": self.key(table)})
            yield
