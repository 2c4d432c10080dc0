"""The local runner: a process pool on this machine.

Worker processes are spawned (not forked: the server holds threads and
database connections that must not be copied) and keep their models loaded
between chunks. If a worker dies (a native crash in a media library), the
pool is rebuilt and the chunk's rows fail with a transient error, so a retry
can pick them up.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from strataflow.engine.runners.base import ExtractionCall, Pipelines, RunNotes
from strataflow.engine.runners.worker import initialise_pool_worker, run_extraction
from strataflow.extractors.base import ErrorCategory, ExtractionError, RowResult

log = logging.getLogger("strataflow.runner")


class LocalRunner:
    name = "local"
    pipelines: Pipelines | None = None  # chunks only: no pipelines in a process pool

    def __init__(self, processes: int, torch_threads: int) -> None:
        self.processes = max(1, processes)
        self.torch_threads = torch_threads
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=initialise_pool_worker,
                    initargs=(self.torch_threads,),
                )
            return self._pool

    def submit(self, call: ExtractionCall, notes: RunNotes | None = None) -> Future[list[RowResult]]:
        # The local pool has no ids worth reporting; its log lines go to this process's log.
        outer: Future[list[RowResult]] = Future()
        try:
            inner = self._executor().submit(run_extraction, call)
        except BrokenProcessPool:
            self._reset()
            inner = self._executor().submit(run_extraction, call)

        def relay(done: Future[list[RowResult]]) -> None:
            try:
                outer.set_result(done.result())
            except BrokenProcessPool as exc:
                log.error("a worker process died; rebuilding the pool", extra={"error": str(exc)})
                self._reset()
                error = ExtractionError(ErrorCategory.RESOURCE, "the worker process died while extracting")
                outer.set_result([RowResult(row_id=r.row_id, error=error) for r in call.inputs])
            except Exception as exc:  # noqa: BLE001  an extractor bug: every row of the chunk fails with it
                error = ExtractionError(ErrorCategory.RUNTIME, f"{type(exc).__name__}: {exc}")
                outer.set_result([RowResult(row_id=r.row_id, error=error) for r in call.inputs])

        inner.add_done_callback(relay)
        return outer

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
