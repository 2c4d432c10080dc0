"""Fence tokens: a worker whose claim was taken over can write nothing more.

Every claim of a tier (or of a background job) adds one to the row's
`fence_token` and hands the new value to the claimer. Whatever the claimer then
writes names that token, and the database refuses a token that is no longer
the row's: progress, per-chunk commits, failures and the tier's end go through
`TierFence.transaction()`, which locks the tier row only if it still carries
our token (PostgreSQL: SELECT … FOR UPDATE; SQLite: the write lock every
writing transaction takes), so a take-over and a commit never interleave.

Documents live in LanceDB, outside the database's transactions, so writes to
the index are checked against the token before and after (`TierFence.check`).
A worker paused between the two checks (SIGSTOP, a long GC pause) may land one
write after it lost the tier; that write is the same one the new owner makes
(document ids derive from their inputs, an upsert replaces), and the check
after it stops the stale worker before it reports or commits anything.

A process paused *inside* a fenced transaction (SIGSTOP) would hold the tier's
row lock, and claims skip locked rows: on PostgreSQL such a transaction is
limited to the lease (`idle_in_transaction_session_timeout`), after which the
server ends it and the tier can be taken over like any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.tables import BatchTier


class LeaseLost(Exception):
    """This process's claim was taken over (or the tier ended): stop, and write nothing more."""


@dataclass(frozen=True)
class TierFence:
    """The claim one run of a tier holds: the tier and the token it was claimed with."""

    db: Database
    batch_id: str
    tier_num: int
    token: int
    idle_limit_s: float = 0.0  # PostgreSQL: the longest a fenced transaction may sit idle (0: no limit)

    def _current(self, session: Session, lock: bool) -> BatchTier | None:
        query = select(BatchTier).where(
            BatchTier.batch_id == self.batch_id,
            BatchTier.tier_num == self.tier_num,
            BatchTier.fence_token == self.token,
            BatchTier.status == Status.IN_PROGRESS,
        )
        if lock and not self.db.is_sqlite:
            query = query.with_for_update()
        return session.scalar(query)

    def holds(self) -> bool:
        """Whether the tier still runs under our token."""
        with self.db.read_session() as session:
            return self._current(session, lock=False) is not None

    def check(self) -> None:
        """Raise LeaseLost unless the tier still runs under our token (around every index write)."""
        if not self.holds():
            raise LeaseLost(f"tier {self.tier_num} of {self.batch_id} is no longer ours (token {self.token})")

    @contextmanager
    def transaction(self) -> Iterator[tuple[Session, BatchTier]]:
        """A transaction that writes only while the tier carries our token; LeaseLost otherwise.

        The tier row stays locked until commit, so no claim takes the tier half-way through.
        """
        with self.db.transaction() as session:
            limit_idle(session, self.db, self.idle_limit_s)
            tier = self._current(session, lock=True)
            if tier is None:
                raise LeaseLost(f"tier {self.tier_num} of {self.batch_id} is no longer ours (token {self.token})")
            yield session, tier


def limit_idle(session: Session, db: Database, seconds: float) -> None:
    """End this transaction server-side if its process stops answering for `seconds` (PostgreSQL)."""
    if seconds > 0 and not db.is_sqlite:
        session.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {int(seconds * 1000)}"))
