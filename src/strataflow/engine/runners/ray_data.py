"""Ray Data pipelines: a tier's Parquet manifest through one extraction stage on a Ray cluster.

    read_parquet(manifest in blob storage: one 0.25-CPU task, one block per batch)
        -> map_batches(StageForwarder task: hands each batch to a warm stage actor) -> iter_batches (the driver)

The stage itself runs in actors that outlive the dataset (engine/runners/ray_stage_pool.py): a
tier of a collection whose extractor already has warm actors pays no actor start and no model
load. Ray Data's map step is a thin task (`StageForwarder`: no CPU, no model, in a worker
process Ray keeps): it gives the pipeline its streaming, back-pressure and retries, and
forwards each batch to a warm actor. What the stage
does with a batch is not this module's business (the services layer hands in its class); this
module owns the Ray side: where the manifest is read from, the resources each part asks for,
the watchdog that reports a tier that stopped moving, and the bookkeeping the tier reports (the
Ray job id, the dataset, the actors that ran, their log lines, and Ray Data's execution stats).

Resources, so that a small cluster cannot deadlock: the read is one task of
`ray_read_cpus` (0.25) CPUs (our own datasource: Ray Data's Parquet reads add tasks that ask
for a whole CPU), split into one block per batch where it runs, so no repartition task
(another whole CPU) is needed; the forwarding tasks reserve no CPU; only the warm stage
actors reserve what the extractor needs.

Documents are not written here: output batches come back to the driver, the scheduler
process, which writes them through the same index writer as the local runner.

Resume: the read gives every row its position in the manifest (ROW_INDEX), which the stage
carries into its output, so the driver can checkpoint which rows are done although batches
come back in no fixed order. A pipeline started by a worker that took the tier over gets the
done rows (`Pipeline.done`, ranges) and its read drops them: they are not run again.

A stage actor that dies (OOM killer, a native crash, a lost node) is restarted by Ray, which
re-runs the batch it had in hand; the dead attempt returned nothing, so no row is lost or
doubled. Unlimited retries would also run a poison row (one that kills its worker every
time) forever, so every pool of warm actors has a `PoisonLedger`: an actor that remembers,
per tier, which rows began and never finished (one per pool, not per dataset: an actor
started per tier put its start in front of every tier's first batch). The warm actor that
gets a batch holding such rows runs them one at a time, and a row that began alone
KILLS_BEFORE_PERMANENT times and never finished is not run again: the stage reports it
failed, for good (engine/runners/isolation.py has the same rule for the other runners).
When nothing comes back for `tier_stall_s` (an actor restarted where no CPU is free, a
stage asking for a resource no node has), the tier is told why (Ray's pending demand, see
ray_stall.py) and the rows still out come back failed with that reason, as a transient
resource error that a batch retry re-runs.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from strataflow.blobs import BlobStore
from strataflow.blobs.local import LocalBlobStore
from strataflow.config import Settings
from strataflow.engine.manifest import ROW_INDEX, count_rows, read_manifest, unfinished_rows
from strataflow.engine.row_ranges import RowRanges
from strataflow.engine.runners.base import RunNotes
from strataflow.engine.runners.ray_stage_pool import ACTOR_COLUMN, LOG_COLUMN, StagePool, StagePools, pool_key
from strataflow.engine.runners.ray_stall import RayDataWarnings, stall_reason
from strataflow.extractors.base import Resources

log = logging.getLogger("strataflow.runner.ray_data")

_MAX_STATS_LINES = 20  # summary lines of Ray Data's stats kept in the tier's logs
_DONE = object()  # the feeder's end-of-dataset marker


# The read is one task whose table is split into one block per batch where it runs; Ray Data
# plans the map step from the one read task and warns that it cannot run two tasks at once.
# It can (the split blocks arrive one by one), so the warning says nothing and fills the log.
warnings.filterwarnings(
    "ignore", message=r"The maximum number of concurrent tasks for 'MapBatches\(StageForwarder\)'", category=UserWarning
)


@dataclass
class Pipeline:
    """One collection of one tier: which manifest, which stage, on what resources."""

    name: str  # the dataset's name: shows in Ray's logs, stats and metrics
    settings: Settings  # the tier's: where its blobs live (the S3 endpoint and keys included)
    blobs: BlobStore
    manifest_key: str
    stage: type  # instantiated as stage(**stage_kwargs, on_gpu=...) once per actor and tier; called with a batch
    stage_kwargs: dict[str, Any]
    resources: Resources
    batch_size: int
    # name, version, parameters: which warm actors can serve this pipeline (none: only its own stage class)
    extractor: dict[str, Any] = field(default_factory=dict)
    # Output rows for manifest rows that will not run (the tier stalled), failed with the given reason;
    # without it a stalled tier fails whole, with the reason.
    unrun: Callable[[pa.Table, str], pa.Table] | None = None
    # Manifest rows an earlier owner of the tier committed: not read into the dataset, not run again.
    done: RowRanges = field(default_factory=RowRanges)


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


class ManifestDatasource(Datasource):  # type: ignore[misc]  # ray is skipped by mypy (pyproject overrides)
    """A tier's manifest as one Ray Data read task that asks for `ray_read_cpus`, and nothing else.

    Ray Data's own Parquet reads also run tasks that ask for a whole CPU (V2: a file listing;
    V1: a footer sample, run from the driver as the dataset is made), which a small cluster
    whose CPUs the stage actors hold may never have free. The driver knows the row count, so
    nothing needs sampling; the read's one block is split into one block per batch where it runs.

    Every row carries its position in the manifest (ROW_INDEX) through the stage back to the
    driver, which checkpoints the done rows by position; rows in `done` (committed by an earlier
    owner of the tier) are dropped here, before any stage sees them.
    """

    def __init__(self, path: str, filesystem: pafs.FileSystem | None, rows: int, done: RowRanges | None = None) -> None:
        super().__init__()
        self.path = path.removeprefix("s3://") if filesystem is not None else path
        self.filesystem = filesystem
        self.done = done if done is not None else RowRanges()
        self.rows = rows - len(self.done)  # the rows this read yields

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        path, filesystem, done = self.path, self.filesystem, self.done

        def read() -> list[pa.Table]:
            return [unfinished_rows(pq.read_table(path, filesystem=filesystem), done)]

        return [
            ReadTask(read, BlockMetadata(num_rows=self.rows, size_bytes=None, exec_stats=None, input_files=(path,)))
        ]


class StageForwarder:
    """Ray Data's map function: hands one batch to a warm stage actor and returns what it made.

    It holds no model and reserves no CPU; the warm actors (ray_stage_pool.StageHost) do the work,
    and consult the pipeline's poison ledger there, where a poison row kills the process. It runs
    as a plain task, not an actor: Ray Data starts a pool of its own actors for every dataset, one
    new process each (a second or more of start and imports per tier, most of a small tier's
    time), while tasks run in the worker processes Ray keeps.
    """

    def __init__(self, hosts: list[Any], tier: str, stage: list[Any], ledger: Any = None) -> None:
        self.hosts = hosts
        self.tier = tier
        self.stage = stage  # [ref of (stage class, kwargs)]: a nested ref travels as a ref, fetched once per host
        self.ledger = ledger

    def __call__(self, batch: pa.Table) -> pa.Table:
        # Blocks hold consecutive rows, so a batch's first position spreads batches over the hosts evenly.
        first = batch.column(ROW_INDEX)[0].as_py() if batch.num_rows else 0
        host = self.hosts[(first // max(batch.num_rows, 1)) % len(self.hosts)]
        # A host that dies is restarted and runs the call again (unlimited retries): the ledger
        # then has it run the batch's unfinished rows one at a time.
        out: pa.Table = ray.get(host.run.remote(batch, self.tier, self.stage, self.ledger))
        return out


class _Feeder:
    """Iterates the dataset on its own thread, so the driver can watch the clock while Ray works."""

    def __init__(self, batches: Iterator[pa.Table]) -> None:
        self._batches = batches
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="strataflow-ray-data-feeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in self._batches:
                while not self._stop.is_set():
                    try:
                        self._queue.put(batch, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    break
            item: Any = _DONE
        except BaseException as exc:  # noqa: BLE001  handed to the driver, which raises it
            item = exc
        finally:
            close = getattr(self._batches, "close", None)
            if close is not None:  # stopped early: shut the execution and its actors down now
                close()
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def get(self, timeout: float) -> Any:
        """The next output batch, _DONE, an exception, or None when nothing came within `timeout`."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        self._stop.set()


class RayDataPipelines:
    """Runs pipelines on the Ray this process is connected to (the RayRunner connects)."""

    def __init__(self, settings: Settings, job_id: str, has_gpus: bool) -> None:
        self.settings = settings
        self.job_id = job_id
        self.has_gpus = has_gpus
        self._lock = threading.Lock()
        self.pools = StagePools.shared()
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # a server's log is no terminal
        self._warnings = RayDataWarnings()
        logging.getLogger("ray.data").addHandler(self._warnings)

    def _stage_options(self, resources: Resources) -> tuple[dict[str, Any], int]:
        """The warm stage actors' Ray options, and the torch threads of each.

        An actor's CPUs are held as long as its pool lives, while the read task needs
        `ray_read_cpus` beside them; so the stage reserves at most the rest of the cluster,
        or its own inputs could never be read. Its torch threads still follow what was asked for.
        """
        wanted = self.settings.ray_actor_cpus or resources.num_cpus
        cluster = float(ray.cluster_resources().get("CPU", 1.0))
        room = max(cluster - self.settings.ray_read_cpus, 0.1) / self.settings.ray_actors
        options: dict[str, Any] = {"num_cpus": min(wanted, room), "memory": resources.memory_mb * 1024 * 1024}
        if options["num_cpus"] < wanted:
            log.warning(
                "stage actors reserve fewer CPUs than asked, to leave room for reading the manifest",
                extra={"asked": wanted, "reserved": options["num_cpus"], "cluster_cpus": cluster},
            )
        if self.has_gpus and resources.num_gpus:  # ask for a GPU only where the cluster has one
            options["num_gpus"] = resources.num_gpus
        return options, max(1, int(wanted))

    def run(self, pipeline: Pipeline, notes: RunNotes) -> Iterator[pa.Table]:
        """Yield the stage's output batches as they finish. Closing the iterator stops the dataset.

        Each output row carries its manifest position (ROW_INDEX); rows in `pipeline.done` are not run.
        """
        rows = count_rows(pipeline.blobs, pipeline.manifest_key)
        if rows <= len(pipeline.done):  # an earlier owner committed every row: no dataset, no actors
            return
        path, filesystem = manifest_source(pipeline.blobs, pipeline.manifest_key, pipeline.settings)
        options, torch_threads = self._stage_options(pipeline.resources)
        key = pool_key(
            pipeline.stage,
            pipeline.extractor,
            {**options, "torch_threads": torch_threads, "memory_mb": self.settings.worker_memory_mb},
        )
        clock = time.monotonic()
        pool, warm = self.pools.acquire(
            key,
            options,
            self.settings.ray_actors,
            torch_threads,
            idle_s=self.settings.ray_actor_idle_s,
            headroom_cpus=self.settings.ray_read_cpus,
            memory_mb=self.settings.worker_memory_mb,
        )
        tier = f"{pipeline.name}-{uuid.uuid4().hex[:8]}"
        stage = ray.put((pipeline.stage, pipeline.stage_kwargs))
        source = ManifestDatasource(path, filesystem, rows, pipeline.done)
        blocks = max(1, math.ceil(source.rows / pipeline.batch_size))
        dataset = ray.data.read_datasource(source, num_cpus=self.settings.ray_read_cpus, override_num_blocks=blocks)
        # One block per batch (split where the read runs): the batches spread over the warm actors,
        # stream back one by one (progress, a cancel between batches), and a retry after a lost
        # worker is confined to the batch it was running.
        # The forwarder travels with each task: the warm actors' handles, the stage's ref, the ledger.
        forward = StageForwarder([slot.handle for slot in pool.slots], tier, [stage], pool.ledger)
        dataset = dataset.map_batches(
            forward,
            # None: each block (one batch, split where the read runs) is one call and one task, so each
            # batch streams back on its own. A batch size would bundle the split blocks (each a little
            # under it) two to a task, and a batch's documents would wait for the next one's extraction.
            batch_size=None,
            batch_format="pyarrow",
            num_cpus=0,
            # Two batches per warm actor in flight: one running, the next queued behind it, so the actor
            # never waits for the driver, and a cancel finds little in hand.
            compute=ray.data.TaskPoolStrategy(size=2 * len(pool.slots)),
            # Their own pooled worker processes: Ray may start an actor in an idle worker process,
            # and an extraction actor's memory ceiling (RLIMIT_DATA) counts what the process already
            # holds; a process that forwarded batches holds Ray Data's buffers, and an actor put
            # there ran out of memory with no row to extract.
            runtime_env={"env_vars": {"STRATAFLOW_RAY_ROLE": "stage-forwarder"}},
        )
        dataset.set_name(pipeline.name)
        notes.job_id = self.job_id
        shown = {k: v for k, v in options.items() if k != "memory"}
        notes.logs.append(
            f"ray data: job {self.job_id} dataset {pipeline.name}: read_parquet({path}) -> "
            f"map_batches(batch_size={pipeline.batch_size}) -> stage actors {key} "
            f"({'warm' if warm else 'started'}, {len(pool.slots)} x {shown})"
        )
        feeder = _Feeder(iter(dataset.iter_batches(batch_size=None, batch_format="pyarrow")))
        returned = RowRanges(pipeline.done)  # rows done before, and rows whose output came back
        first = True
        finished = False
        try:
            last = time.monotonic()
            while True:
                item = feeder.get(timeout=min(1.0, self.settings.tier_stall_s))
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                if item is not None:
                    if first:
                        notes.logs.append(
                            f"ray data: first batch after {time.monotonic() - clock:.2f}s "
                            f"({'warm' if warm else 'new'} stage actors)"
                        )
                        first = False
                    last = time.monotonic()
                    if ROW_INDEX in item.schema.names:  # a stage that keeps the positions (ours does)
                        returned.update(RowRanges.of_indices(item.column(ROW_INDEX).to_pylist()))
                    yield self._take_notes(item, notes)
                    continue
                if time.monotonic() - last >= self.settings.tier_stall_s:
                    yield self._stalled(pipeline, pool, notes, returned)
                    break
            finished = True
        finally:
            feeder.stop()
            # A cancel or a stall ends the actors (their work in hand with them); a finished tier leaves them warm.
            pool.ledger.forget.remote(tier)  # the tier's suspects go with it; the ledger stays with the pool
            self.pools.release(pool, stop=not finished or pool.stalled)
            notes.logs.append(f"ray data: dataset {dataset.get_dataset_id()} ended")
            notes.logs.extend(self._stats(dataset))

    def _stalled(self, pipeline: Pipeline, pool: StagePool, notes: RunNotes, returned: RowRanges) -> pa.Table:
        """Report why the tier stopped moving, and fail the rows still out with that reason."""
        reason = stall_reason(
            self.settings.tier_stall_s, [slot.actor_id for slot in pool.slots], list(self._warnings.lines)
        )
        log.error("tier stalled", extra={"dataset": pipeline.name, "reason": reason})
        notes.logs.append(f"ray data: stalled: {reason}")
        if notes.on_stall is not None:
            notes.on_stall(reason)
        pool.stalled = True
        if pipeline.unrun is None:
            raise RuntimeError(f"the tier stalled on Ray: {reason}")
        left: list[dict[str, Any]] = []
        position = 0
        for chunk in read_manifest(pipeline.blobs, pipeline.manifest_key):
            for row in chunk:
                if position not in returned:
                    left.append({**row.to_record(), ROW_INDEX: position})
                position += 1
        return pipeline.unrun(pa.Table.from_pylist(left), f"the tier stalled on Ray: {reason}")

    @staticmethod
    def _take_notes(batch: pa.Table, notes: RunNotes) -> pa.Table:
        for actor_id in dict.fromkeys(batch.column(ACTOR_COLUMN).to_pylist()):
            if actor_id and actor_id not in notes.actor_ids:
                notes.actor_ids.append(actor_id)
        for lines in batch.column(LOG_COLUMN).to_pylist():
            notes.logs.extend(lines or [])
        return batch.drop_columns([ACTOR_COLUMN, LOG_COLUMN])

    def close(self) -> None:
        StagePools.detach()
        logging.getLogger("ray.data").removeHandler(self._warnings)

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
            summary += [f"Dataset {line.lstrip('* ')}" for line in lines[lines.index("Dataset throughput:") + 1 :]]
        return [f"ray data stats: {line}" for line in summary[:_MAX_STATS_LINES]]
