"""Finding the row that kills a worker, so it fails alone and its neighbours get their documents.

When a worker process dies (the kernel's OOM killer, a native crash in a media library) the
call it was running returns nothing, for any of its rows. Failing them all would fail the
innocent rows with the guilty one, and a retry would send the same poison with the same
neighbours. So the rows of a dead call run again in halves, and halves of halves, down to
one row at a time. A row that ends its worker twice on its own fails as a permanent
VALIDATION failure (its input is the cause; a retry would only kill another worker).

A row that reports running out of memory (`OutOfMemory`: the worker's memory ceiling at
work) is treated the same way: it runs again on its own, since its neighbours may have
held the memory, and fails for good when it runs out on its own twice.

Runners supply `attempt`: run these rows in a worker that dies alone (a quarantine
worker, one attempt at a time, so one poison row cannot take another call's rows with it)
and raise `WorkerDied` when it does.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError

from strataflow.extractors.base import ErrorCategory, ExtractionError, ExtractorInput, OutOfMemory, RowResult

log = logging.getLogger("strataflow.runner.isolation")

KILLS_BEFORE_PERMANENT = 2  # times a row may end its worker, alone, before it fails for good

Attempt = Callable[[list[ExtractorInput]], list[RowResult]]


class WorkerDied(Exception):
    """The worker running an attempt ended before it answered."""


def killed_worker_error() -> ExtractionError:
    return ExtractionError(
        ErrorCategory.VALIDATION,
        f"this row ended its extraction worker {KILLS_BEFORE_PERMANENT} times when run on its own (out of memory "
        "or a crash inside a media library); its input is the cause, so it is not retried",
    )


def out_of_memory_error() -> ExtractionError:
    return ExtractionError(
        ErrorCategory.VALIDATION,
        f"this row ran out of memory {KILLS_BEFORE_PERMANENT} times when run on its own (the worker's memory "
        "ceiling, setting STRATAFLOW_WORKER_MEMORY_MB, or the machine's memory); it is not retried",
    )


def needs_isolation(results: list[RowResult]) -> bool:
    """True when a call's results hold a row that ran out of memory (the whole call dying is the other case)."""
    return any(isinstance(r.error, OutOfMemory) for r in results)


def isolate_in_background(
    rows: list[ExtractorInput], first: list[RowResult] | None, attempt: Attempt, outer: Future[list[RowResult]]
) -> None:
    """`isolate` on a thread of its own, resolving `outer`: a runner's callback thread must not wait on its workers."""

    def work() -> None:
        try:
            results = isolate(rows, first, attempt)
        except Exception as exc:  # the future must always resolve
            log.error("isolating a dead call's rows failed", exc_info=exc)
            error = ExtractionError(ErrorCategory.RESOURCE, "the worker process died while extracting")
            results = [RowResult(row_id=r.row_id, error=error) for r in rows]
        try:
            outer.set_result(results)
        except InvalidStateError:  # answered already (a runner's stall watchdog): the first answer stands
            pass

    threading.Thread(target=work, name="strataflow-isolate", daemon=True).start()


def isolate(rows: list[ExtractorInput], first: list[RowResult] | None, attempt: Attempt) -> list[RowResult]:
    """One RowResult per row, in order, after narrowing a dead call (`first` is None) down to its culprits.

    `first` holds the results of the call as it first ran when it did answer but some of its
    rows ran out of memory; those rows are run again, the others keep their results.
    """
    return _Isolation(rows, attempt).run(first)


class _Isolation:
    def __init__(self, rows: list[ExtractorInput], attempt: Attempt) -> None:
        self.rows = rows
        self.attempt = attempt
        self.done: dict[int, RowResult] = {}
        self.kills: Counter[int] = Counter()
        self.pending: deque[list[int]] = deque()
        self.broken = False  # a worker that dies with no row in it: nothing here is any row's fault

    def run(self, first: list[RowResult] | None) -> list[RowResult]:
        everything = list(range(len(self.rows)))
        if first is None:
            self._after_death(everything)
        else:
            self._after_answer(everything, first)
        while self.pending and not self.broken:
            group = self.pending.popleft()
            try:
                answered = self.attempt([self.rows[i] for i in group])
            except WorkerDied:
                log.warning(
                    "a worker died running %d row(s) in isolation",
                    len(group),
                    extra={"row_ids": [self.rows[i].row_id for i in group][:20]},
                )
                self._after_death(group)
                continue
            self._after_answer(group, answered)
        unfinished = ExtractionError(
            ErrorCategory.RESOURCE,
            "extraction workers are dying even with no row to extract; the rows will run again on a retry",
        )
        return [self.done.get(i) or RowResult(self.rows[i].row_id, error=unfinished) for i in everything]

    def _after_death(self, group: list[int]) -> None:
        """A dead group splits in two; a single row is charged with the death and tries again until its limit."""
        if len(group) > 1:
            middle = len(group) // 2
            self.pending.extend([group[:middle], group[middle:]])
            return
        [row] = group
        self.kills[row] += 1
        if self.kills[row] < KILLS_BEFORE_PERMANENT:
            self.pending.append(group)
        elif self._worker_survives_no_rows():
            self.done[row] = RowResult(self.rows[row].row_id, error=killed_worker_error())
        else:
            log.error("a worker died with no row to extract: the workers are broken, not the rows")
            self.broken = True

    def _worker_survives_no_rows(self) -> bool:
        """Before a row is blamed for good: does a worker live through a call with no rows at all?"""
        try:
            self.attempt([])
        except WorkerDied:
            return False
        return True

    def _after_answer(self, group: list[int], answered: list[RowResult]) -> None:
        alone = len(group) == 1
        for index, result in zip(group, answered, strict=True):
            if not isinstance(result.error, OutOfMemory):
                self.done[index] = result
            elif not alone:  # its neighbours may have held the memory: it runs again on its own
                self.pending.append([index])
            else:
                self.kills[index] += 1
                if self.kills[index] >= KILLS_BEFORE_PERMANENT:
                    self.done[index] = RowResult(result.row_id, error=out_of_memory_error())
                else:
                    self.pending.append([index])
