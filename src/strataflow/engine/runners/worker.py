"""What runs inside a worker process: look up the extractor, extract, return row results.

Kept free of the server's state so it imports quickly and behaves the same in
a process pool or a Ray actor.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time

from strataflow.engine.runners.base import ExtractionCall
from strataflow.extractors.base import ErrorCategory, ExtractContext, ExtractionError, OutOfMemory, RowResult


def initialise(torch_threads: int, memory_mb: int | None = None) -> None:
    """Per-process set-up: bounded threads, offline model hubs, the optional memory ceiling."""
    if memory_mb:
        limit_memory(memory_mb)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch

        torch.set_num_threads(max(1, torch_threads))
    except ImportError:  # extractors that need no torch run without it
        pass


def limit_memory(memory_mb: int) -> None:
    """Cap this process's data segment (heap and anonymous mappings, RLIMIT_DATA).

    An allocation past it fails with MemoryError in the row that made it, long before the
    kernel's OOM killer would pick a process (perhaps the server) to kill. RLIMIT_DATA rather
    than RLIMIT_AS: address space that torch and thread stacks reserve but never touch does
    not count against it.
    """
    ceiling = memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (ceiling, hard))


def initialise_pool_worker(torch_threads: int, memory_mb: int | None = None, parent: int | None = None) -> None:
    """Set-up of a local pool's worker: `initialise`, and exit when the server that spawned it dies.

    A SIGKILLed server cannot shut its pool down, and its spawned workers would live on as
    orphans, each holding its models (hundreds of MiB). The kernel re-parents an orphan, so
    a changed parent pid is the sign to go. (Not PR_SET_PDEATHSIG: it fires when the
    spawning *thread* ends, and the pool spawns from short-lived tier threads.)

    `parent` is the server's pid, as the server knew it: a worker whose server died while it
    was still starting is already re-parented here, and taking its parent from `getppid()`
    then would watch the wrong process for ever (seen: an orphan blocked for minutes sending
    a result nobody would read).
    """
    initialise(torch_threads, memory_mb)
    parent = parent if parent is not None else os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), name="strataflow-parent-watch", daemon=True).start()


def _exit_when_orphaned(parent: int, interval_s: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(interval_s)
    os._exit(0)  # no clean-up owed: the work in hand belongs to a server that no longer exists


def run_extraction(call: ExtractionCall) -> list[RowResult]:
    from strataflow.extractors.registry import get_extractor, parse_parameters

    extractor = get_extractor(call.extractor_name, call.extractor_version)
    params = parse_parameters(extractor, call.parameters)
    call.work_dir.mkdir(parents=True, exist_ok=True)
    context = ExtractContext(work_dir=call.work_dir, device=call.device, models_dir=call.models_dir, limits=call.limits)
    try:
        results = extractor.extract(call.inputs, params, context)
    except MemoryError:  # the whole chunk failed for want of memory: the runner reruns its rows alone
        error = OutOfMemory(ErrorCategory.RESOURCE, "out of memory while extracting")
        return [RowResult(row_id=row.row_id, error=error) for row in call.inputs]
    by_id = {r.row_id: r for r in results}
    missing = ExtractionError(ErrorCategory.RUNTIME, "the extractor returned no result for this row")
    return [by_id.get(row.row_id) or RowResult(row_id=row.row_id, error=missing) for row in call.inputs]


class LineCollector(logging.Handler):
    """Keeps the log lines an extraction emits in a worker, so the tier's logs show what ran where."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
