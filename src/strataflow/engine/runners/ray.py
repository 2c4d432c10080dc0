"""The Ray runner: extraction in Ray actors that keep their models loaded.

Batch tiers run as Ray Data pipelines (`self.pipelines`, engine/runners/ray_data.py)
unless `ray_data` is off. Single chunks go through `submit`, described here.

Same contract as the local runner: `submit` takes one chunk of rows and
returns a future of one RowResult per row. Each extractor gets a small pool
of actors (`ray_actors`), placed with the extractor's declared resources:
`num_cpus` (fractional is fine), `memory`, and `num_gpus` only when the
cluster has GPUs, in which case the actor runs the extractor on `cuda`.

Documents are not written here: the chunk's results travel back to the
scheduler process, which writes them through the same index writer as the
local runner, so document ids and vectors are the same whichever runner ran.

A worker process that dies mid-chunk (OOM killer, a native crash, a lost
node) is restarted by Ray (`max_restarts`), but the chunk is not retried
whole on it: the same poison would kill it again, with the same neighbours.
Its rows are narrowed down instead (engine/runners/isolation.py) in a
quarantine actor of the same extractor, one attempt at a time: halves, then
single rows; a row that kills the quarantine actor twice on its own fails as
a permanent VALIDATION error and the rest get their documents. Extraction is
deterministic, so a rerun row yields the same documents.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ray
from ray.exceptions import RayActorError, RayTaskError

import strataflow
from strataflow.config import Settings
from strataflow.engine.runners.base import ExtractionCall, RunNotes
from strataflow.engine.runners.isolation import WorkerDied, isolate_in_background, needs_isolation
from strataflow.engine.runners.ray_data import RayDataPipelines
from strataflow.engine.runners.ray_stall import stall_reason
from strataflow.engine.runners.worker import LineCollector, initialise, run_extraction
from strataflow.extractors.base import ErrorCategory, ExtractionError, ExtractorInput, RowResult

log = logging.getLogger("strataflow.runner.ray")


_F = TypeVar("_F", bound=Callable[..., Any])


def _in_group(group: str) -> Callable[[_F], _F]:
    """`ray.method(concurrency_group=...)` with its type: ray's decorator carries none."""
    decorator: Callable[[_F], _F] = ray.method(concurrency_group=group)
    return decorator


@ray.remote(concurrency_groups={"control": 1})
class ExtractionActor:
    """One Ray worker process holding an extractor's models between chunks.

    Chunks run one at a time (the default concurrency group); `pid` and `describe`
    answer from their own group so they can be asked while a chunk runs.
    """

    def __init__(self, torch_threads: int, memory_mb: int | None = None) -> None:
        initialise(torch_threads, memory_mb)
        self.started = time.time()

    @_in_group("control")
    def pid(self) -> int:
        return os.getpid()

    def extract(self, call: ExtractionCall) -> tuple[list[RowResult], list[str]]:
        context = ray.get_runtime_context()
        if ray.get_gpu_ids():  # placed on a GPU: use it, whatever the scheduler's default device
            call = dataclasses.replace(call, device="cuda")
        collector = LineCollector()
        root = logging.getLogger()
        root.addHandler(collector)
        started = time.monotonic()
        try:
            results = run_extraction(call)
        finally:
            root.removeHandler(collector)
        failed = sum(1 for r in results if r.failed)
        summary = (
            f"actor {context.get_actor_id()} task {context.get_task_id()} node {context.get_node_id()} "
            f"pid {os.getpid()} device {call.device}: {call.extractor_name} {call.extractor_version} "
            f"{len(results)} rows, {failed} failed, {time.monotonic() - started:.2f}s"
        )
        return results, [*collector.lines, summary]


@dataclass
class _Slot:
    handle: Any
    actor_id: str
    in_flight: int = 0


def _failed(call: ExtractionCall, reason: str) -> list[RowResult]:
    """Every row of the chunk failed, retryably, because the tier stalled on Ray."""
    error = ExtractionError(ErrorCategory.RESOURCE, f"the tier stalled on Ray: {reason}"[:2000])
    return [RowResult(row_id=row.row_id, error=error) for row in call.inputs]


def _answer(outer: Future[list[RowResult]], results: list[RowResult]) -> None:
    try:
        outer.set_result(results)
    except InvalidStateError:  # the watchdog and the result raced: the first answer stands
        pass


def _source_dir() -> str | None:
    """The directory holding this `strataflow` package when it runs from a source checkout.

    Ray workers must import the same code as the driver; an installed package is
    found by them anyway, a checkout is not unless it is on their PYTHONPATH.
    """
    package_parent = Path(strataflow.__file__).resolve().parents[1]
    if any(part in ("site-packages", "dist-packages") for part in package_parent.parts):
        return None
    return str(package_parent)


class RayRunner:
    name = "ray"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pools: dict[str, list[_Slot]] = {}
        self._quarantine_lock = threading.Lock()  # one isolation attempt at a time, in its own actor
        self._quarantine: dict[str, Any] = {}
        self._started_ray = self._connect()
        self.job_id = ray.get_runtime_context().get_job_id()
        self.has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        # With Ray Data on (the default), the tier executor runs each collection of a tier as one
        # pipeline over its manifest; `submit` (one chunk per call) serves everything else.
        self.pipelines: RayDataPipelines | None = (
            RayDataPipelines(settings, self.job_id, self.has_gpus) if settings.ray_data else None
        )
        log.info(
            "ray runner connected",
            extra={"ray_job_id": self.job_id, "address": settings.ray_address or "local", "gpus": self.has_gpus},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RayRunner:
        return cls(settings)

    # -- cluster ------------------------------------------------------------------
    def _connect(self) -> bool:
        """Join the configured cluster, or start Ray in this process; True when we started it."""
        if ray.is_initialized():  # another runner in this process already connected
            return False
        env_vars = {"TOKENIZERS_PARALLELISM": "false"}
        if (source := _source_dir()) is not None:
            env_vars["PYTHONPATH"] = source
        options: dict[str, Any] = {
            "namespace": self.settings.ray_namespace,
            "include_dashboard": False,
            "runtime_env": {"env_vars": env_vars},
            "logging_level": logging.WARNING,
        }
        if self.settings.ray_address:
            ray.init(address=self.settings.ray_address, **options)
            return False
        if self.settings.ray_num_cpus:
            options["num_cpus"] = self.settings.ray_num_cpus
        if self.settings.ray_object_store_mb:
            options["object_store_memory"] = self.settings.ray_object_store_mb * 1024 * 1024
        # Ray stops an idle worker process after 1 s, so each Ray Data tier started its forwarding
        # workers again (a process start and its imports: about 3 s in front of every tier here).
        # Idle workers are kept as long as idle stage actors are (a cluster of our own only; a
        # cluster started elsewhere takes this from `ray start --system-config`).
        keep_ms = int(max(1.0, self.settings.ray_actor_idle_s) * 1000)
        options["_system_config"] = {"idle_worker_killing_time_threshold_ms": keep_ms}
        ray.init(**options)
        return True

    def _actor_options(self, call: ExtractionCall) -> dict[str, Any]:
        from strataflow.extractors.registry import get_extractor

        resources = get_extractor(call.extractor_name, call.extractor_version).resources
        num_cpus = self.settings.ray_actor_cpus or resources.num_cpus
        options: dict[str, Any] = {
            "num_cpus": num_cpus,
            "memory": resources.memory_mb * 1024 * 1024,
            # No task retries: a chunk whose actor died is narrowed down to its poison row instead.
            "max_restarts": self.settings.ray_max_restarts,
            "max_task_retries": 0,
        }
        if self.has_gpus and resources.num_gpus:
            options["num_gpus"] = resources.num_gpus
        return options

    def _slot(self, call: ExtractionCall) -> _Slot:
        """The least busy actor for this extractor, creating the pool on first use."""
        key = f"{call.extractor_name}_{call.extractor_version}"
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                options = self._actor_options(call)
                threads = max(1, int(options["num_cpus"]))
                pool = []
                for _ in range(self.settings.ray_actors):
                    handle = ExtractionActor.options(**options).remote(  # type: ignore[attr-defined]
                        threads, self.settings.worker_memory_mb
                    )
                    pool.append(_Slot(handle, handle._actor_id.hex()))
                self._pools[key] = pool
                log.info(
                    "ray actors started",
                    extra={
                        "extractor": key,
                        "actors": [s.actor_id for s in pool],
                        **{k: v for k, v in options.items() if k != "memory"},
                    },
                )
            slot = min(pool, key=lambda s: s.in_flight)
            slot.in_flight += 1
            return slot

    # -- the runner interface ---------------------------------------------------------
    def submit(self, call: ExtractionCall, notes: RunNotes | None = None) -> Future[list[RowResult]]:
        outer: Future[list[RowResult]] = Future()
        if notes is not None and notes.stalled:  # this tier already waited once: its other chunks fail at once
            outer.set_result(_failed(call, notes.stalled))
            return outer
        slot = self._slot(call)
        ref = slot.handle.extract.remote(call)
        task_id = ref.task_id().hex()
        # No answer within the stall limit (an actor restarted where nothing has room): say why, fail the chunk.
        watchdog = threading.Timer(self.settings.tier_stall_s, self._stalled, args=(outer, call, slot, notes))
        watchdog.daemon = True
        watchdog.start()

        def relay(done: Future[Any]) -> None:
            watchdog.cancel()
            with self._lock:
                slot.in_flight -= 1
            if outer.done():  # the watchdog answered already
                return
            lines: list[str] = []
            died = False
            try:
                results, lines = done.result()
            except RayActorError as exc:  # the actor's process died: narrow the chunk down to its poison row
                log.error(
                    "ray actor died; rerunning its chunk's rows in quarantine",
                    extra={"actor_id": slot.actor_id, "error": str(exc)[:500]},
                )
                died, results = True, []
                lines = [f"the actor {slot.actor_id} died running task {task_id}; its rows rerun in quarantine"]
            except RayTaskError as exc:  # an extractor bug: every row of the chunk fails with it
                cause = exc.cause if exc.cause is not None else exc
                log.error("extraction call failed on ray", extra={"actor_id": slot.actor_id, "error": str(exc)[:2000]})
                error = ExtractionError(ErrorCategory.RUNTIME, f"{type(cause).__name__}: {cause}"[:2000])
                results = [RowResult(row_id=r.row_id, error=error) for r in call.inputs]
                lines = [f"actor {slot.actor_id} task {task_id}: the extractor failed: {type(cause).__name__}"]
            except Exception as exc:  # anything else fails the chunk's rows, not the tier
                log.error("ray call failed", exc_info=exc)
                error = ExtractionError(ErrorCategory.RUNTIME, f"{type(exc).__name__}: {exc}"[:2000])
                results = [RowResult(row_id=r.row_id, error=error) for r in call.inputs]
            if notes is not None:
                notes.job_id = self.job_id
                if slot.actor_id not in notes.actor_ids:
                    notes.actor_ids.append(slot.actor_id)
                notes.task_ids.append(task_id)
                notes.logs.extend(lines)
            if died or needs_isolation(results):  # the watchdog is off: quarantine runs one row at a time
                isolate_in_background(
                    call.inputs, None if died else results, lambda rows: self._attempt(call, rows, notes), outer
                )
            else:
                _answer(outer, results)

        ref.future().add_done_callback(relay)
        return outer

    def _attempt(self, call: ExtractionCall, rows: list[ExtractorInput], notes: RunNotes | None) -> list[RowResult]:
        """Run `rows` in the extractor's quarantine actor; WorkerDied when it dies (Ray restarts it)."""
        key = f"{call.extractor_name}_{call.extractor_version}"
        with self._quarantine_lock:
            handle = self._quarantine.get(key)
            if handle is None:
                # It reserves nothing: the extractor's actors may hold every CPU (and GPU) of the cluster,
                # and a quarantine that waited for them would wait for ever. It runs rarely, one call at a time.
                threads = max(1, int(self._actor_options(call)["num_cpus"]))
                handle = ExtractionActor.options(  # type: ignore[attr-defined]
                    num_cpus=0, max_restarts=-1, max_task_retries=0
                ).remote(threads, self.settings.worker_memory_mb)
                self._quarantine[key] = handle
            try:
                results, lines = ray.get(handle.extract.remote(dataclasses.replace(call, inputs=rows)))
            except RayActorError as exc:
                raise WorkerDied from exc
        if notes is not None:
            notes.logs.extend(f"quarantine {line}" for line in lines)
        return list(results)

    def _stalled(
        self, outer: Future[list[RowResult]], call: ExtractionCall, slot: _Slot, notes: RunNotes | None
    ) -> None:
        if outer.done():
            return
        reason = stall_reason(self.settings.tier_stall_s, [slot.actor_id], [])
        log.error("ray chunk stalled", extra={"actor_id": slot.actor_id, "reason": reason})
        if notes is not None:
            notes.stalled = reason
            notes.logs.append(f"actor {slot.actor_id}: stalled: {reason}")
            if notes.on_stall is not None:
                notes.on_stall(reason)
        _answer(outer, _failed(call, reason))

    def actor_pids(self) -> dict[str, int]:
        """Process ids of the live actors, by actor id (operators and tests use this)."""
        with self._lock:
            slots = [slot for pool in self._pools.values() for slot in pool]
        return {slot.actor_id: ray.get(slot.handle.pid.remote(), timeout=60) for slot in slots}

    def close(self) -> None:
        if self.pipelines is not None:
            self.pipelines.close()
        with self._lock:
            slots = [slot for pool in self._pools.values() for slot in pool]
            self._pools.clear()
        with self._quarantine_lock:
            handles = [*(slot.handle for slot in slots), *self._quarantine.values()]
            self._quarantine.clear()
        for handle in handles:
            try:
                ray.kill(handle, no_restart=True)
            except Exception:  # noqa: BLE001, S110  already gone with its node
                pass
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
