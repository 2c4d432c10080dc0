"""The local runner: a process pool on this machine.

Worker processes are spawned (not forked: the server holds threads and
database connections that must not be copied) and keep their models loaded
between chunks. If a worker dies (the OOM killer, a native crash in a media
library), the pool is rebuilt and the dead call's rows are narrowed down in a
quarantine worker (engine/runners/isolation.py): the rows that did nothing
wrong get their documents, and the row that kills a worker twice fails alone,
for good. The same happens to rows that run out of memory under the optional
ceiling (`worker_memory_mb`).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from strataflow.engine.runners.base import ExtractionCall, Pipelines, RunNotes
from strataflow.engine.runners.isolation import WorkerDied, isolate_in_background, needs_isolation
from strataflow.engine.runners.worker import initialise_pool_worker, run_extraction
from strataflow.extractors.base import ErrorCategory, ExtractionError, ExtractorInput, RowResult

log = logging.getLogger("strataflow.runner")


class LocalRunner:
    name = "local"
    pipelines: Pipelines | None = None  # chunks only: no pipelines in a process pool
    # What a worker runs for one call (a module-level function: it is pickled to the worker by name).
    entry: Callable[[ExtractionCall], list[RowResult]] = staticmethod(run_extraction)

    def __init__(self, processes: int, torch_threads: int, memory_mb: int | None = None) -> None:
        self.processes = max(1, processes)
        self.torch_threads = torch_threads
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        # Reruns of a dead call's rows: one worker, one attempt at a time, so a poison row
        # dies alone and never takes the rows of another call (or tier) with it.
        self._quarantine_lock = threading.Lock()
        self._quarantine: ProcessPoolExecutor | None = None
        self._isolating = 0

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=initialise_pool_worker,
            initargs=(self.torch_threads, self.memory_mb, os.getpid()),  # the parent the workers watch
        )

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = self._new_pool(self.processes)
            return self._pool

    def submit(self, call: ExtractionCall, notes: RunNotes | None = None) -> Future[list[RowResult]]:
        # The local pool has no ids worth reporting; its log lines go to this process's log.
        outer: Future[list[RowResult]] = Future()
        try:
            inner = self._executor().submit(self.entry, call)
        except BrokenProcessPool:
            self._reset()
            inner = self._executor().submit(self.entry, call)

        def relay(done: Future[list[RowResult]]) -> None:
            try:
                results = done.result()
            except BrokenProcessPool:
                log.error(
                    "a worker process died; rebuilding the pool and rerunning its rows in quarantine",
                    extra={"extractor": call.extractor_name, "rows": len(call.inputs)},
                )
                self._reset()
                self._isolate(call, None, outer)
                return
            except Exception as exc:
                log.error("extraction call failed", exc_info=exc, extra={"extractor": call.extractor_name})
                error = ExtractionError(ErrorCategory.RUNTIME, f"{type(exc).__name__}: {exc}"[:2000])
                outer.set_result([RowResult(row_id=r.row_id, error=error) for r in call.inputs])
                return
            if needs_isolation(results):
                self._isolate(call, results, outer)
            else:
                outer.set_result(results)

        inner.add_done_callback(relay)
        return outer

    # -- isolation of poison rows -------------------------------------------------------
    def _isolate(self, call: ExtractionCall, first: list[RowResult] | None, outer: Future[list[RowResult]]) -> None:
        with self._quarantine_lock:
            self._isolating += 1
        outer.add_done_callback(lambda _: self._isolation_ended())
        isolate_in_background(call.inputs, first, lambda rows: self._attempt(call, rows), outer)

    def _isolation_ended(self) -> None:
        """The quarantine worker holds a second copy of the models: it goes when no isolation needs it."""
        with self._quarantine_lock:
            self._isolating -= 1
            if self._isolating == 0 and self._quarantine is not None:
                self._quarantine.shutdown(wait=False, cancel_futures=True)
                self._quarantine = None

    def _attempt(self, call: ExtractionCall, rows: list[ExtractorInput]) -> list[RowResult]:
        with self._quarantine_lock:
            if self._quarantine is None:
                self._quarantine = self._new_pool(1)
            try:
                return self._quarantine.submit(self.entry, dataclasses.replace(call, inputs=rows)).result()
            except BrokenProcessPool as exc:
                self._quarantine.shutdown(wait=False, cancel_futures=True)
                self._quarantine = None
                raise WorkerDied from exc

    def _reset(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._quarantine_lock:
            if self._quarantine is not None:
                self._quarantine.shutdown(wait=True, cancel_futures=True)
            self._quarantine = None
