"""Stage actors that outlive a tier: an extractor's models are loaded once, not once per tier.

A Ray Data `map_batches` stage lives and dies with its dataset, so every tier of
every batch paid an actor start and a model load (30-40 s for real models).
Here the stage runs in actors this process owns, pooled by what they hold: the
stage class, the extractor (name, version, parameters) and the resources they
reserve. A later tier of the same collection, or of another collection with the
same extractor, takes the warm pool; its own stage (the tier's rows, filters,
settings) is built inside the actor from a small object sent once per tier.

A pool nobody uses is stopped after `ray_actor_idle_s`, or at once when a pool
this process wants cannot be placed (its actors wait for the CPUs idle pools
hold). A canceled tier stops its pool when no other tier shares it, so the work
it had in hand stops with it.

Actors restart without limit and retry the call they were running (a killed
process, a lost node): extraction is deterministic, and the dead attempt
returned nothing, so no row is lost or doubled. A row that kills its worker
every time is stopped where the model runs: with the pipeline's poison ledger
(PoisonLedger, one per pool) an actor runs a batch that holds rows which began and
never finished one row at a time, and fails for good a row that began alone
KILLS_BEFORE_PERMANENT times. Each actor process keeps the worker memory
ceiling (`worker_memory_mb`), so a bomb runs out of memory alone instead of
taking the node's memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import ray

from strataflow.engine.runners.isolation import KILLS_BEFORE_PERMANENT, killed_worker_error
from strataflow.engine.runners.worker import LineCollector, initialise

log = logging.getLogger("strataflow.runner.ray_pool")

# Columns each output batch carries back to the driver, which takes them off again.
ACTOR_COLUMN, LOG_COLUMN = "__ray_actor_id", "__ray_log"
_STAGES_KEPT = 4  # tiers' stages an actor keeps built (tiers of one pool running at once)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class PoisonLedger:
    """Which rows of each tier began extracting and have not finished: the suspects after a death.

    One per pool, living as long as its warm actors: it must outlive the actor that died, and
    starting one per tier put an actor start in front of every tier's first batch. A ledger
    that is itself restarted starts empty; its rows then get one more try each.
    """

    def __init__(self) -> None:
        self.open: dict[str, set[str]] = {}
        self.alone: dict[str, dict[str, int]] = {}

    def begin(self, tier: str, row_ids: list[str]) -> list[str]:
        """Mark `row_ids` begun; answer those that had begun before and never finished."""
        begun = self.open.setdefault(tier, set())
        suspects = [row_id for row_id in row_ids if row_id in begun]
        begun.update(row_ids)
        return suspects

    def begin_alone(self, tier: str, row_id: str) -> int:
        """Mark `row_id` begun on its own; answer how many times it has begun on its own."""
        self.open.setdefault(tier, set()).add(row_id)
        alone = self.alone.setdefault(tier, {})
        alone[row_id] = alone.get(row_id, 0) + 1
        return alone[row_id]

    def finish(self, tier: str, row_ids: list[str]) -> None:
        self.open.get(tier, set()).difference_update(row_ids)
        alone = self.alone.get(tier, {})
        for row_id in row_ids:
            alone.pop(row_id, None)

    def forget(self, tier: str) -> None:
        """The tier's pipeline ended: nothing of it runs any more."""
        self.open.pop(tier, None)
        self.alone.pop(tier, None)


@ray.remote(max_restarts=-1, max_task_retries=-1, concurrency_groups={"control": 1})
class StageHost:
    """One Ray worker process running tiers' stages, its extractor's models loaded once."""

    def __init__(self, torch_threads: int, memory_mb: int | None = None) -> None:
        initialise(torch_threads, memory_mb)
        logging.getLogger("strataflow").setLevel(logging.INFO)  # the stage's own lines, for the collector
        self.on_gpu = bool(ray.get_gpu_ids())  # placed on a GPU: the stage uses it
        self.stages: OrderedDict[str, Any] = OrderedDict()
        self.batches = 0

    @ray.method(concurrency_group="control")  # type: ignore[untyped-decorator]  # ray is skipped by mypy
    def ready(self) -> int:
        return os.getpid()

    def run(self, batch: pa.Table, tier: str, stage: list[Any], ledger: Any = None) -> pa.Table:
        """Run `tier`'s stage over one batch; `stage` holds the ref of (class, kwargs), fetched once per tier;
        `ledger`, the tier's poison ledger (rows that began and never finished)."""
        if tier not in self.stages:
            stage_class, kwargs = ray.get(stage[0])
            self.stages[tier] = stage_class(**kwargs, on_gpu=self.on_gpu)
            while len(self.stages) > _STAGES_KEPT:
                self.stages.popitem(last=False)
        self.stages.move_to_end(tier)
        context = ray.get_runtime_context()
        actor_id = context.get_actor_id() or ""
        self.batches += 1
        collector = LineCollector()
        root = logging.getLogger()
        root.addHandler(collector)
        started = time.monotonic()
        try:
            out = self._guarded(self.stages[tier], tier, batch, ledger)
        finally:
            root.removeHandler(collector)
        summary = (
            f"actor {actor_id} node {context.get_node_id()} pid {os.getpid()} batch {self.batches} "
            f"device {'cuda' if self.on_gpu else 'cpu'}: {batch.num_rows} rows in, {out.num_rows} out, "
            f"{time.monotonic() - started:.2f}s"
        )
        logs: list[list[str]] = [[] for _ in range(out.num_rows)]
        if logs:  # the batch's lines ride on its first row
            logs[0] = [*collector.lines, summary]
        return out.append_column(ACTOR_COLUMN, pa.array([actor_id] * out.num_rows, pa.string())).append_column(
            LOG_COLUMN, pa.array(logs, pa.list_(pa.string()))
        )

    @staticmethod
    def _guarded(stage: Any, tier: str, batch: pa.Table, ledger: Any) -> pa.Table:
        """The stage over the batch; row by row when it holds rows that began before and never finished.

        The stage reads a `row_id` column and answers `poisoned(rows, message)`: the output for
        rows it must not run again.
        """
        if ledger is None:
            out: pa.Table = stage(batch)
            return out
        row_ids = [str(r) for r in batch.column("row_id").to_pylist()]
        if not ray.get(ledger.begin.remote(tier, row_ids)):
            out = stage(batch)
            ray.get(ledger.finish.remote(tier, row_ids))
            return out
        log.warning("a batch that was running when its worker died: its %d rows run one at a time", len(row_ids))
        pieces = []
        for position, row_id in enumerate(row_ids):
            row = batch.slice(position, 1)
            if ray.get(ledger.begin_alone.remote(tier, row_id)) > KILLS_BEFORE_PERMANENT:
                pieces.append(stage.poisoned(row, killed_worker_error().message))
            else:
                pieces.append(stage(row))
            ray.get(ledger.finish.remote(tier, [row_id]))
        return pa.concat_tables(pieces)


def pool_key(stage: type, extractor: dict[str, Any], options: dict[str, Any]) -> str:
    """What makes two tiers' actors interchangeable: the stage, the extractor and its parameters, the resources."""
    described = json.dumps(
        {"stage": f"{stage.__module__}.{stage.__qualname__}", "extractor": extractor, "options": options},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(described.encode()).hexdigest()[:16]


@dataclass
class Slot:
    handle: Any
    actor_id: str
    ready: Any  # the ref of its first `ready` call: resolved once the actor was placed and started
    in_flight: int = 0


@dataclass
class StagePool:
    key: str
    options: dict[str, Any]
    slots: list[Slot]
    ledger: Any = None  # the pool's PoisonLedger (a handle), for every tier its actors run
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    stalled: bool = False  # a tier saw it make no progress: it is stopped, not kept warm
    idle_s: float = 60.0  # kept this long after its last tier

    def placed(self) -> bool:
        ready, _ = ray.wait([s.ready for s in self.slots], num_returns=len(self.slots), timeout=0)
        return len(ready) == len(self.slots)

    def least_busy(self) -> Slot:
        return min(self.slots, key=lambda s: s.in_flight)


class StagePools:
    """The stage actor pools of this process (one Ray driver), by key; a reaper thread stops idle ones.

    Shared by every Ray runner of the process (`shared`), so that a pool waiting for room can
    stop any idle pool of the process, whichever runner started it.
    """

    _shared: StagePools | None = None
    _shared_users = 0
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[str, StagePool] = {}
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="strataflow-stage-pools", daemon=True)
        self._reaper.start()

    @classmethod
    def shared(cls) -> StagePools:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = StagePools()
            cls._shared_users += 1
            return cls._shared

    @classmethod
    def detach(cls) -> None:
        """A runner is done with the shared pools; the last one out stops them."""
        with cls._shared_lock:
            cls._shared_users -= 1
            pools = cls._shared if cls._shared_users <= 0 else None
            if pools is not None:
                cls._shared, cls._shared_users = None, 0
        if pools is not None:
            pools.close()

    def acquire(
        self,
        key: str,
        options: dict[str, Any],
        actors: int,
        torch_threads: int,
        *,
        idle_s: float,
        headroom_cpus: float,
        memory_mb: int | None = None,
    ) -> tuple[StagePool, bool]:
        """The pool for `key`, started if needed; True when it was already there (warm).

        A new pool that would leave less than `headroom_cpus` free (what a read task needs)
        first stops the idle pools of this process. `memory_mb`: each actor's memory ceiling
        (part of `key`: actors with another ceiling are another pool).
        """
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                pool.users += 1
                pool.idle_s = idle_s
                return pool, True
        needed = float(options.get("num_cpus", 1.0)) * actors
        if float(ray.available_resources().get("CPU", 0.0)) < needed + headroom_cpus:
            self.stop_idle(reason="room for a new pool")
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                handles = [
                    StageHost.options(**options).remote(torch_threads, memory_mb)  # type: ignore[attr-defined]
                    for _ in range(actors)
                ]
                slots = [Slot(h, h._actor_id.hex(), h.ready.remote()) for h in handles]
                pool = StagePool(key, options, slots, ledger=PoisonLedger.remote())  # type: ignore[attr-defined]
                self._pools[key] = pool
                log.info(
                    "stage actors started",
                    extra={
                        "pool": key,
                        "actors": [s.actor_id for s in pool.slots],
                        **{k: v for k, v in options.items() if k != "memory"},
                    },
                )
                warm = False
            else:
                warm = True
            pool.users += 1
            pool.idle_s = idle_s
            return pool, warm

    def release(self, pool: StagePool, *, stop: bool = False) -> None:
        """A tier is done with `pool`; `stop`: end it now if no other tier uses it (a cancel, a stall)."""
        with self._lock:
            pool.users -= 1
            pool.last_used = time.monotonic()
            if (stop or pool.idle_s == 0) and pool.users == 0 and self._pools.get(pool.key) is pool:
                del self._pools[pool.key]
            else:
                return
        _kill(pool)

    def pools(self) -> list[StagePool]:
        with self._lock:
            return list(self._pools.values())

    def _reap(self) -> None:
        while not self._closed.wait(1.0):
            try:
                self._stop_expired()
            except Exception:  # the reaper must outlive a failed round (a lost cluster)
                log.warning("stage pool reaper round failed", exc_info=True)

    def _stop_expired(self) -> None:
        """Stop pools idle past their `idle_s`, and every idle pool while another pool waits to be placed."""
        pools = self.pools()
        if any(p.users and not p.placed() for p in pools):
            self.stop_idle(reason="room for a waiting pool")
            return
        now = time.monotonic()
        self.stop_idle(reason="idle", only=lambda p: now - p.last_used >= p.idle_s)

    def stop_idle(self, *, reason: str = "asked", only: Callable[[StagePool], bool] | None = None) -> int:
        """Stop the pools no tier is using (those `only` accepts); how many were stopped."""
        with self._lock:
            idle = [p for p in self._pools.values() if p.users == 0 and (only is None or only(p))]
            for pool in idle:
                del self._pools[pool.key]
        for pool in idle:
            log.info(
                "stage actors stopped",
                extra={"pool": pool.key, "reason": reason, "idle_s": round(time.monotonic() - pool.last_used, 1)},
            )
            _kill(pool)
        return len(idle)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            _kill(pool)


def _kill(pool: StagePool) -> None:
    for handle in [slot.handle for slot in pool.slots] + ([pool.ledger] if pool.ledger is not None else []):
        try:
            ray.kill(handle, no_restart=True)
        except Exception:  # noqa: BLE001, S110  already gone with its node, or Ray is shutting down
            pass
