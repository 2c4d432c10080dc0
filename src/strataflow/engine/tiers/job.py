"""The contract between the scheduler and a tier executor: the job it is handed, the result it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from strataflow.engine.fencing import TierFence


@dataclass
class ChunkCommit:
    """What one committed chunk records, in one fenced transaction with the chunk's own rows."""

    rows_done: int
    rows_total: int
    counters: dict[str, Any]
    checkpoint: dict[str, Any] | None = None  # the tier's resume point; None leaves it as it is
    write: Callable[[Session], None] | None = None  # the executor's rows (failures), same transaction


@dataclass
class TierJob:
    """What an executor is asked to do, and how it reports back.

    `commit` and `report` raise LeaseLost once the claim is gone; `fence.check()` guards
    writes made outside the database (the index).
    """

    batch_id: str
    tier_num: int
    owner: str
    should_stop: Callable[[], bool]
    report: Callable[[int, int, dict[str, Any]], None]  # rows_done, rows_total, counters
    fence: TierFence
    commit: Callable[[ChunkCommit], None]
    checkpoint: dict[str, Any] = field(default_factory=dict)  # what earlier owners of this round committed


@dataclass
class TierResult:
    rows_total: int
    rows_failed: int
    counters: dict[str, Any] = field(default_factory=dict)
    extractor_jobs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_summary: dict[str, int] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    stopped: bool = False


class TierExecutor(Protocol):
    def __call__(self, job: TierJob) -> TierResult: ...
