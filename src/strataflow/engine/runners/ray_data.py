"""Ray Data pipelines: a tier's Parquet manifest through one extraction stage on a Ray cluster.

    read_parquet(manifest in blob storage) -> repartition(one batch per block)
        -> map_batches(stage, actors) -> iter_batches (the driver)

The stage is a callable class, built once per Ray Data actor, so the models an
extractor loads stay loaded for every batch that actor takes. What the stage
does with a batch is not this module's business (the services layer hands in
its class); this module owns the Ray side: where the manifest is read from,
the resources each stage asks for, and the bookkeeping the tier reports (the
Ray job id, the dataset, the actors and tasks that ran, their log lines, and
Ray Data's own execution stats).

Documents are not written here: output batches come back to the driver, the
scheduler process, which writes them through the same index writer as the
local runner.

A stage actor that dies (OOM killer, a native crash, a lost node) is Ray
Data's to handle: its actors are created with unlimited restarts and task
retries, so the batch it was running is run again on the restarted actor;
the dead attempt returned nothing, so no row is lost or doubled. Unlimited
retries would also run a poison row (one that kills its worker every time)
forever, so every pipeline has a `PoisonLedger`: an actor that remembers
which rows began and never finished. A batch that holds such rows runs them
one at a time, and a row that began alone KILLS_BEFORE_PERMANENT times and
never finished is not run again: the stage reports it failed, for good
(engine/runners/isolation.py has the same rule for the other runners).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import ray
import ray.data

from strataflow.blobs import BlobStore
from strataflow.blobs.local import LocalBlobStore
from strataflow.config import Settings
from strataflow.engine.runners.base import RunNotes
from strataflow.engine.runners.isolation import KILLS_BEFORE_PERMANENT, killed_worker_error
from strataflow.engine.runners.worker import LineCollector, initialise
from strataflow.extractors.base import Resources

log = logging.getLogger("strataflow.runner.ray_data")

# Columns this module adds to every output batch and takes off again before the driver sees it.
_ACTOR, _LOG = "__ray_actor_id", "__ray_log"
_MAX_STATS_LINES = 20  # summary lines of Ray Data's stats kept in the tier's logs


@dataclass
class Pipeline:
    """One collection of one tier: which manifest, which stage, on what resources."""

    name: str  # the dataset's name: shows in Ray's logs, stats and metrics
    settings: Settings  # the tier's: where its blobs live (the S3 endpoint and keys included)
    blobs: BlobStore
    manifest_key: str
    stage: type  # instantiated as stage(**stage_kwargs, on_gpu=...) once per actor; called with a pyarrow batch
    stage_kwargs: dict[str, Any]
    resources: Resources
    batch_size: int


def manifest_source(blobs: BlobStore, key: str, settings: Settings) -> tuple[str, pafs.FileSystem | None]:
    """Where Ray Data reads the manifest: a path on this host, or an S3 URI with a filesystem for it.

    A local blob store is a directory on this host, so it only serves a Ray cluster on this
    host; a cluster of several hosts needs S3, where every worker reads the same object.
    """
    if isinstance(blobs, LocalBlobStore):
        return str(blobs.path(key)), None
    uri = blobs.uri(key)
    if not uri.startswith("s3://"):
        raise ValueError(f"Ray Data cannot read a manifest stored at {uri}")
    options: dict[str, Any] = {"region": settings.s3_region}
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        options.update(access_key=settings.s3_access_key_id, secret_key=settings.s3_secret_access_key)
    if settings.s3_endpoint_url:  # MinIO, R2, a test server: arrow takes host:port and the scheme apart
        endpoint = urlparse(settings.s3_endpoint_url)
        options.update(endpoint_override=endpoint.netloc or endpoint.path, scheme=endpoint.scheme or "https")
    return uri, pafs.S3FileSystem(**options)


@ray.remote(num_cpus=0)
class PoisonLedger:
    """Which rows of one pipeline began extracting and have not finished: the suspects after a death."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.alone: dict[str, int] = {}

    def begin(self, row_ids: list[str]) -> list[str]:
        """Mark `row_ids` begun; answer those that had begun before and never finished."""
        suspects = [row_id for row_id in row_ids if row_id in self.open]
        self.open.update(row_ids)
        return suspects

    def begin_alone(self, row_id: str) -> int:
        """Mark `row_id` begun on its own; answer how many times it has begun on its own."""
        self.open.add(row_id)
        self.alone[row_id] = self.alone.get(row_id, 0) + 1
        return self.alone[row_id]

    def finish(self, row_ids: list[str]) -> None:
        self.open.difference_update(row_ids)
        for row_id in row_ids:
            self.alone.pop(row_id, None)


class StageActor:
    """The class Ray Data runs in each actor: the stage, plus where it ran and what it logged.

    The stage reads a `row_id` column and answers `poisoned(rows, message)`: the output for rows
    it must not run again.
    """

    def __init__(self, stage: type, stage_kwargs: dict[str, Any], torch_threads: int, ledger: Any = None,
                 memory_mb: int | None = None) -> None:
        initialise(torch_threads, memory_mb)
        self.ledger = ledger
        logging.getLogger("strataflow").setLevel(logging.INFO)  # the stage's own lines, for the collector
        self.on_gpu = bool(ray.get_gpu_ids())  # placed on a GPU: the stage uses it
        self.stage = stage(**stage_kwargs, on_gpu=self.on_gpu)
        self.batches = 0

    def _run(self, batch: pa.Table) -> pa.Table:
        """The stage over the batch; row by row when it holds rows that began before and never finished."""
        if self.ledger is None:
            out: pa.Table = self.stage(batch)
            return out
        row_ids = [str(r) for r in batch.column("row_id").to_pylist()]
        if not ray.get(self.ledger.begin.remote(row_ids)):
            out = self.stage(batch)
            ray.get(self.ledger.finish.remote(row_ids))
            return out
        logging.getLogger("strataflow.ray_data").warning(
            "a batch that was running when its worker died: its %d rows run one at a time", len(row_ids))
        pieces = []
        for position, row_id in enumerate(row_ids):
            row = batch.slice(position, 1)
            if ray.get(self.ledger.begin_alone.remote(row_id)) > KILLS_BEFORE_PERMANENT:
                pieces.append(self.stage.poisoned(row, killed_worker_error().message))
            else:
                pieces.append(self.stage(row))
            ray.get(self.ledger.finish.remote([row_id]))
        return pa.concat_tables(pieces)

    def __call__(self, batch: pa.Table) -> pa.Table:
        # No task id here: Ray Data calls this from a thread pool inside the actor, where the
        # runtime context answers with whichever task started that thread, not this batch's.
        context = ray.get_runtime_context()
        actor_id = context.get_actor_id() or ""
        self.batches += 1
        collector = LineCollector()
        root = logging.getLogger()
        root.addHandler(collector)
        started = time.monotonic()
        try:
            out = self._run(batch)
        finally:
            root.removeHandler(collector)
        summary = (f"actor {actor_id} node {context.get_node_id()} pid {os.getpid()} batch {self.batches} "
                   f"device {'cuda' if self.on_gpu else 'cpu'}: {batch.num_rows} rows in, {out.num_rows} out, "
                   f"{time.monotonic() - started:.2f}s")
        logs: list[list[str]] = [[] for _ in range(out.num_rows)]
        if logs:  # the batch's lines ride on its first row
            logs[0] = [*collector.lines, summary]
        return (out.append_column(_ACTOR, pa.array([actor_id] * out.num_rows, pa.string()))
                .append_column(_LOG, pa.array(logs, pa.list_(pa.string()))))


class RayDataPipelines:
    """Runs pipelines on the Ray this process is connected to (the RayRunner connects)."""

    def __init__(self, settings: Settings, job_id: str, has_gpus: bool) -> None:
        self.settings = settings
        self.job_id = job_id
        self.has_gpus = has_gpus
        self._lock = threading.Lock()
        self._slots: dict[float, threading.BoundedSemaphore] = {}
        # A server's log is no terminal: no progress bars from Ray Data.
        ray.data.DataContext.get_current().enable_progress_bars = False

    def _slot(self, stage_cpus: float) -> threading.BoundedSemaphore:
        """How many pipelines of this size run at once from this process: as many as the cluster holds.

        A pipeline's stage actors hold their CPUs for the whole run, and its read and repartition
        tasks need a CPU beside them (Ray Data's default for tasks: 1). Pipelines started beyond
        what the cluster holds would hold actors while their reads wait for CPUs that other
        pipelines' actors hold, each waiting on the other; so the extra ones wait here instead.
        """
        with self._lock:
            if stage_cpus not in self._slots:
                cpus = float(ray.cluster_resources().get("CPU", 1.0))
                at_once = max(1, int(cpus // (stage_cpus * self.settings.ray_actors + 1.0)))
                self._slots[stage_cpus] = threading.BoundedSemaphore(at_once)
            return self._slots[stage_cpus]

    def _stage_options(self, resources: Resources) -> tuple[dict[str, Any], int]:
        """The stage's Ray options, and the torch threads of each of its actors.

        An actor's CPUs are reserved for the whole run, while the read and repartition tasks
        upstream need a CPU of their own (Ray Data's default for a task: 1). So the stage
        reserves at most all but one of the cluster's CPUs, or its own inputs could never be
        read; its torch threads still follow what was asked for.
        """
        wanted = self.settings.ray_actor_cpus or resources.num_cpus
        cluster = float(ray.cluster_resources().get("CPU", 1.0))
        room = max(cluster - 1.0, 0.1) / self.settings.ray_actors
        options: dict[str, Any] = {"num_cpus": min(wanted, room), "memory": resources.memory_mb * 1024 * 1024,
                                   "concurrency": self.settings.ray_actors}
        if options["num_cpus"] < wanted:
            log.warning("stage actors reserve fewer CPUs than asked, to leave one for reading the manifest",
                        extra={"asked": wanted, "reserved": options["num_cpus"], "cluster_cpus": cluster})
        if self.has_gpus and resources.num_gpus:  # ask for a GPU only where the cluster has one
            options["num_gpus"] = resources.num_gpus
        return options, max(1, int(wanted))

    def run(self, pipeline: Pipeline, notes: RunNotes) -> Iterator[pa.Table]:
        """Yield the stage's output batches as they finish. Closing the iterator stops the dataset."""
        path, filesystem = manifest_source(pipeline.blobs, pipeline.manifest_key, pipeline.settings)
        options, torch_threads = self._stage_options(pipeline.resources)
        with self._lock:  # read_parquet samples the files here, importing as it goes: not thread-safe
            dataset = ray.data.read_parquet(path, filesystem=filesystem, num_cpus=self.settings.ray_read_cpus)
        # A manifest is one file of large row groups, so it reads as one block, and a block is what
        # one actor task takes and returns whole. Blocks of one batch each spread the work over all
        # actors, stream each batch back as it finishes (progress, a cancel between batches), and
        # confine a retry after a lost worker to the batch it was running.
        dataset = dataset.repartition(target_num_rows_per_block=pipeline.batch_size)
        ledger = PoisonLedger.remote()  # type: ignore[attr-defined]
        dataset = dataset.map_batches(
            StageActor, batch_size=pipeline.batch_size, batch_format="pyarrow",
            fn_constructor_kwargs={"stage": pipeline.stage, "stage_kwargs": pipeline.stage_kwargs,
                                   "torch_threads": torch_threads, "ledger": ledger,
                                   "memory_mb": self.settings.worker_memory_mb},
            **options)
        dataset.set_name(pipeline.name)
        notes.job_id = self.job_id
        shown = {k: v for k, v in options.items() if k != "memory"}
        notes.logs.append(f"ray data: job {self.job_id} dataset {pipeline.name}: read_parquet({path}) -> "
                          f"map_batches(batch_size={pipeline.batch_size}, {shown})")
        slot = self._slot(float(options["num_cpus"]))
        slot.acquire()
        batches = iter(dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
        try:
            for batch in batches:
                yield self._take_notes(batch, notes)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:  # stopped early (a cancel): shut the execution and its actors down now
                close()
            slot.release()
            ray.kill(ledger)
            notes.logs.append(f"ray data: dataset {dataset.get_dataset_id()} ended")
            notes.logs.extend(self._stats(dataset))

    @staticmethod
    def _take_notes(batch: pa.Table, notes: RunNotes) -> pa.Table:
        for actor_id in dict.fromkeys(batch.column(_ACTOR).to_pylist()):
            if actor_id and actor_id not in notes.actor_ids:
                notes.actor_ids.append(actor_id)
        for lines in batch.column(_LOG).to_pylist():
            notes.logs.extend(lines or [])
        return batch.drop_columns([_ACTOR, _LOG])

    @staticmethod
    def _stats(dataset: ray.data.Dataset) -> list[str]:
        """Ray Data's summary of the execution: one line per operator, and the dataset's throughput."""
        try:
            lines = [line.strip() for line in dataset.stats().splitlines() if line.strip()]
        except Exception as exc:  # stats are a report, never a reason to fail the tier
            log.warning("ray data stats unavailable", exc_info=True)
            return [f"ray data stats unavailable: {type(exc).__name__}: {exc}"]
        summary = [line for line in lines if line.startswith("Operator ")]
        if "Dataset throughput:" in lines:  # the per-operator details stay in Ray's own logs
            summary += [f"Dataset {line.lstrip('* ')}" for line in lines[lines.index("Dataset throughput:") + 1:]]
        return [f"ray data stats: {line}" for line in summary[:_MAX_STATS_LINES]]
