"""A collection's rows through a runner, with the next batch extracting while this one is written.

Each batch of rows is prepared (its inputs read), extracted, and written as documents. On the
batch engine's runner the extraction runs in another process (the local pool) or on a Ray actor,
so in strict sequence the worker idles while the server prepares and writes, and the server
idles while the worker extracts. `ChunkRun` keeps one batch ahead: batch k+1's inputs are
prepared and its extraction submitted before batch k's documents are written, across the tier's
manifest chunks too. At most two batches are in flight (one extracting, one being written), so
memory stays bounded by two batches of inputs. `run_collection` is the same run with nothing
ahead and the extractor called in this process (tests, benches, one-off runs).

What the sequence promised still holds:
- batches are written in order, each with the fencing guard before and after its write;
- a chunk is reported (and so checkpointed by the executor) only once every row of it is
  written; a run that stops mid-chunk reports the chunk with only the rows it wrote;
- a cancel seen (`should_stop`, asked before each batch starts and before each write) starts
  and writes nothing more: the batch still extracting is waited for and its outcomes dropped;
- an extraction that raises fails its own rows only; a dying worker is the runner's to narrow
  down (engine/runners/isolation.py), each call's future answers for its own rows;
- each batch has its own scratch dir (inputs and extractor outputs), removed once the batch is
  written or dropped, so one batch's clean-up never deletes the other's inputs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from strataflow.engine.tiers.collection_run import (
    CollectionSpec,
    RunContext,
    document_builder,
    plan_inputs,
    prepare_inputs,
    write_outcomes,
)
from strataflow.engine.tiers.records import SourceRecord
from strataflow.engine.tiers.results import CollectionRunResult
from strataflow.extractors.base import ErrorCategory, ExtractContext, ExtractionError, ExtractorInput, RowResult
from strataflow.store.tables import Collection

log = logging.getLogger("strataflow.runner")

T = TypeVar("T")

# Starts extracting a batch (the collection's feature_extractor config, its inputs, a scratch dir).
SubmitFunction = Callable[[dict[str, Any], list[ExtractorInput], Path], "Future[list[RowResult]]"]


@dataclass
class ChunkDone(Generic[T]):
    """A chunk whose rows are written: the caller's tag for it and what running it produced."""

    tag: T
    result: CollectionRunResult
    # None: every record of the chunk is done. Else the run stopped mid-chunk: the source ids
    # of the records whose rows were written (or failed); the others were not run.
    handled: set[str] | None = None


@dataclass
class _Chunk(Generic[T]):
    tag: T
    result: CollectionRunResult
    batches_left: int
    handled: set[str] = field(default_factory=set)


@dataclass
class _Batch(Generic[T]):
    chunk: _Chunk[T]
    records: list[SourceRecord]
    scratch: Path
    # Its own tally, merged into its chunk's once written: a dropped batch reports nothing.
    result: CollectionRunResult
    row_ids: list[str] = field(default_factory=list)  # the rows submitted (the others failed preparing)
    future: Future[list[RowResult]] | None = None  # None: no row had inputs to extract
    submitted: float = 0.0
    extracted: float = 0.0  # when its future answered

    def answered(self, _future: Future[list[RowResult]]) -> None:
        self.extracted = time.monotonic()


class ChunkRun(Generic[T]):
    """Iterate to run `chunks` (tag, records) through `collection`; yields each chunk once written.

    `stopped` is True afterwards when a cancel was seen before every row was run.
    """

    def __init__(
        self,
        ctx: RunContext,
        collection: Collection,
        chunks: Iterable[tuple[T, list[SourceRecord]]],
        submit: SubmitFunction,
        ahead: int = 1,
    ) -> None:
        self.ctx = ctx
        self.collection = collection
        self.chunks = chunks
        self.submit = submit
        self.ahead = ahead  # batches extracting while the oldest is written
        self.stopped = False
        self.plan = plan_inputs(CollectionSpec.of(collection))
        self.builder = document_builder(collection, self.plan, ctx.blobs)
        self.builder.enrich = ctx.enrich
        self._open: list[_Chunk[T]] = []  # chunks with batches started, not all written
        self._last_answer = 0.0
        self._batches = 0

    def __iter__(self) -> Iterator[ChunkDone[T]]:
        return self.run()

    def run(self) -> Generator[ChunkDone[T], None, None]:
        """The chunks, each once written; closing it early drops the batches in flight."""
        self.ctx.work_root.mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix=f"{self.collection.collection_id}-", dir=self.ctx.work_root))
        flight: deque[_Batch[T]] = deque()
        try:
            for tag, records in self.chunks:
                self._check_source_type(records)
                size = max(1, self.ctx.batch_size)
                parts = [records[start : start + size] for start in range(0, len(records), size)]
                chunk = _Chunk(tag, CollectionRunResult(self.collection.collection_id), len(parts))
                if not parts:  # nothing to extract; reported after the chunks before it, in order
                    yield from self._drain(flight, 0)
                    if self.stopped:
                        break
                    yield ChunkDone(tag, chunk.result)
                    continue
                self._open.append(chunk)
                for rows in parts:
                    if self._stop_seen():
                        break
                    flight.append(self._start(chunk, rows, work_dir))
                    yield from self._drain(flight, self.ahead)
                    if self.stopped:
                        break
                if self.stopped:
                    break
            yield from self._drain(flight, 0)
            if self.stopped:  # what the stopped run did write is reported; the rest was not run
                for chunk in self._open:
                    if chunk.handled:
                        yield ChunkDone(chunk.tag, chunk.result, chunk.handled)
        finally:
            for batch in flight:  # stopped, or the caller gave up (a lost claim): drop what is in flight
                self._drop(batch)
            shutil.rmtree(work_dir, ignore_errors=True)

    def _stop_seen(self) -> bool:
        if not self.stopped and self.ctx.should_stop():
            self.stopped = True
        return self.stopped

    def _check_source_type(self, records: list[SourceRecord]) -> None:
        wrong = sorted({r.source_type for r in records} - {self.plan.spec.source_type})
        if wrong:
            raise ValueError(
                f"collection {self.collection.collection_id} reads from its {self.collection.source.get('type')}, "
                f"not from records of type {wrong}"
            )

    def _start(self, chunk: _Chunk[T], records: list[SourceRecord], work_dir: Path) -> _Batch[T]:
        """Prepare a batch's inputs in its own scratch dir and submit its extraction."""
        self._batches += 1
        scratch = work_dir / f"batch-{self._batches}"
        result = CollectionRunResult(self.collection.collection_id)
        clock = time.monotonic()
        inputs = prepare_inputs(self.plan, records, self.ctx.blobs, scratch / "rows", result, self.ctx.limits)
        result.prepare_ms += (time.monotonic() - clock) * 1000
        batch = _Batch(chunk, records, scratch, result, [i.row_id for i in inputs])
        if not inputs:
            return batch
        batch.submitted = time.monotonic()
        try:
            batch.future = self.submit(self.collection.feature_extractor, inputs, scratch / "extract")
        except Exception as exc:  # a runner that cannot take the call fails its rows, not the run
            log.exception("extraction could not be submitted", extra={"collection_id": self.collection.collection_id})
            batch.future = Future()
            batch.future.set_result([RowResult(i.row_id, error=_error(exc)) for i in inputs])
        batch.future.add_done_callback(batch.answered)
        return batch

    def _drain(self, flight: deque[_Batch[T]], keep: int) -> Iterator[ChunkDone[T]]:
        """Write the oldest batches until `keep` remain in flight; yield the chunks they complete."""
        while len(flight) > keep:
            batch = flight.popleft()
            done = self._finish(batch)
            if self.stopped:
                return
            if done is not None:
                yield done

    def _finish(self, batch: _Batch[T]) -> ChunkDone[T] | None:
        """Wait for a batch's extraction and write it; its chunk's ChunkDone when it was the last one."""
        chunk = batch.chunk
        try:
            outcomes = self._outcomes(batch)
            if self._stop_seen():  # canceled meanwhile: nothing more is written
                return None
            if outcomes:
                clock = time.monotonic()
                write_outcomes(
                    self.ctx.index,
                    self.builder,
                    {record.source_id: record for record in batch.records},
                    outcomes,
                    batch.result,
                    self.ctx.live_roots,
                    self.ctx.guard,
                )
                batch.result.write_ms += (time.monotonic() - clock) * 1000
        finally:
            shutil.rmtree(batch.scratch, ignore_errors=True)  # after the write: the builder reads extractor outputs
        chunk.result.merge(batch.result)
        chunk.handled.update(record.source_id for record in batch.records)
        chunk.batches_left -= 1
        if chunk.batches_left:
            return None
        self._open.remove(chunk)
        self._maintain()
        return ChunkDone(chunk.tag, chunk.result)

    def _outcomes(self, batch: _Batch[T]) -> list[RowResult]:
        if batch.future is None:
            return []
        outcomes = _answer(batch.future, batch.row_ids, self.collection.collection_id)
        # The worker's time on this batch: from when it could start it (submitted, or the previous
        # batch answered: one call extracts at a time) to its answer, so the sums do not overlap.
        begun = max(batch.submitted, self._last_answer)
        answered = batch.extracted or time.monotonic()
        batch.result.extract_ms += max(0.0, answered - begun) * 1000
        self._last_answer = answered
        return outcomes

    def _maintain(self) -> None:
        """The index upkeep after each chunk (the next batch extracts meanwhile)."""
        if self.ctx.guard is not None:
            self.ctx.guard()
        if self.ctx.index.has_table(self.collection.collection_id):
            self.ctx.index.maintain(self.collection.collection_id)

    def _drop(self, batch: _Batch[T]) -> None:
        """A batch not to be written: wait for its extraction (its worker is busy with it, and may be
        reading its inputs), ignore the answer, remove its scratch dir."""
        try:
            if batch.future is not None:
                batch.future.result()
        except Exception:  # nothing reads this answer
            log.debug("a dropped batch's extraction failed", exc_info=True)
        finally:
            shutil.rmtree(batch.scratch, ignore_errors=True)


def run_collection(ctx: RunContext, collection: Collection, records: list[SourceRecord]) -> CollectionRunResult:
    """Extract `records` through `collection` and write the documents, one batch after the other,
    the extraction in this process (or through `ctx.extract`). Per-row failures are returned.

    The batch engine's path with nothing ahead: the same `ChunkRun` over one chunk, so a run here
    prepares, extracts, writes and stops exactly as a tier does.
    """
    started = time.monotonic()
    result = CollectionRunResult(collection.collection_id)

    def extract_here(config: dict[str, Any], inputs: list[ExtractorInput], scratch: Path) -> Future[list[RowResult]]:
        answer: Future[list[RowResult]] = Future()
        try:
            if ctx.extract is not None:
                answer.set_result(ctx.extract(config, inputs, scratch))
            else:
                context = ExtractContext(scratch, ctx.device, ctx.should_stop, limits=ctx.limits)
                answer.set_result(run.plan.extractor.extract(inputs, run.plan.params, context))
        except Exception as exc:  # noqa: BLE001  answered, and so failed to its own rows as a runner's call is
            answer.set_exception(exc)
        return answer

    run: ChunkRun[None] = ChunkRun(ctx, collection, [(None, records)], extract_here, ahead=0)
    for done in run:
        result.merge(done.result)
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _answer(future: Future[list[RowResult]], row_ids: list[str], collection_id: str) -> list[RowResult]:
    try:
        return future.result()
    except Exception as exc:  # an extractor bug fails its rows, not the run
        log.exception("extractor failed", extra={"collection_id": collection_id})
        return [RowResult(row_id, error=_error(exc)) for row_id in row_ids]


def _error(exc: Exception) -> ExtractionError:
    return ExtractionError(ErrorCategory.RUNTIME, f"{type(exc).__name__}: {exc}")
