"""The local path overlaps extraction with writes: batch k+1 extracts while batch k is written.

A recording runner wraps the real process pool (it only notes each submit and passes it on)
and the index's real `replace_sources` is wrapped to note each write, so the order of what
really happened can be read back: the extraction of the next batch, across manifest chunks
too, is submitted before the write of the batch before it has finished. A scheduler stopped
mid-pipeline commits only rows it wrote, and the tier taken up again writes every row once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.config import Settings
from strataflow.engine.manifest import read_manifest
from strataflow.engine.row_ranges import RowRanges
from strataflow.engine.runners.base import ExtractionCall, Pipelines, RunNotes
from strataflow.engine.runners.local import LocalRunner
from strataflow.extractors.base import RowResult
from strataflow.runtime import Runtime, open_runtime
from strataflow.store.tables import BatchTier
from tests.collection_flows import add_object, make_bucket, text_collection
from tests.helpers import wait_task

OBJECTS, BATCH, CHUNK = 8, 2, 4  # two manifest chunks of two extractor batches each


class RecordingRunner:
    """The shared process pool, noting each call it is given (and, once, running a hook first)."""

    name = "local"
    pipelines: Pipelines | None = None

    def __init__(self, inner: LocalRunner, events: list[tuple[str, tuple[str, ...]]]) -> None:
        self.inner = inner
        self.events = events
        self.hook: tuple[int, Any] | None = None  # (submit number, what to run before passing it on)
        self.submits = 0

    def submit(self, call: ExtractionCall, notes: RunNotes | None = None) -> Future[list[RowResult]]:
        self.submits += 1
        if self.hook is not None and self.hook[0] == self.submits:
            self.hook[1]()
        self.events.append(("submit", tuple(r.row_id for r in call.inputs)))
        return self.inner.submit(call, notes)

    def close(self) -> None:  # the pool is the session's
        return None


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the order of calls is the point here, not the database


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    from tests.conftest import ADMIN_KEY

    return Settings(
        data_dir=tmp_path / "data",
        api_key=ADMIN_KEY,
        task_poll_interval_s=0.05,
        extract_batch_size=BATCH,
        manifest_chunk_rows=CHUNK,
    )


@pytest.fixture
def events() -> list[tuple[str, tuple[str, ...]]]:
    return []


@pytest.fixture
def recorder(shared_runner: LocalRunner, events: list[tuple[str, tuple[str, ...]]]) -> RecordingRunner:
    return RecordingRunner(shared_runner, events)


@pytest.fixture
def runtime(settings: Settings, recorder: RecordingRunner, events: list[Any]) -> Iterator[Runtime]:
    rt = open_runtime(settings, recorder)  # type: ignore[arg-type]
    real = rt.index.replace_sources

    def replace_sources(collection_id: str, documents: list[Any], column: str, sources: list[str]) -> int:
        events.append(("write", tuple(sources)))
        removed = real(collection_id, documents, column, sources)
        events.append(("written", tuple(sources)))
        return removed

    rt.index.replace_sources = replace_sources  # type: ignore[method-assign]
    yield rt
    rt.close()


def _objects(client: TestClient) -> tuple[str, list[str]]:
    bucket_id = make_bucket(client)
    collection = text_collection(client, "chunks", {"type": "bucket", "bucket_ids": [bucket_id]}, model="wordllama")
    return collection["collection_id"], [add_object(client, f"Note {i}. Cats purr softly.") for i in range(OBJECTS)]


def _submit(client: TestClient, object_ids: list[str]) -> tuple[str, str]:
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()
    task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
    return batch["batch_id"], task["task_id"]


def _roots(client: TestClient, collection_id: str) -> set[str]:
    body = client.post(f"/v1/collections/{collection_id}/documents/list?limit=1000", json={}).json()
    return {d["_internal"]["lineage"]["root_object_id"] for d in body["results"]}


def _written_rows(events: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    return [row for kind, rows in events if kind == "written" for row in rows]


def test_next_batch_extracts_while_this_one_is_written(
    client: TestClient, namespace: dict[str, Any], events: list[tuple[str, tuple[str, ...]]]
) -> None:
    collection_id, object_ids = _objects(client)
    _batch_id, task_id = _submit(client, object_ids)
    assert wait_task(client, task_id, timeout=120)["status"] == "COMPLETED"
    submits = [rows for kind, rows in events if kind == "submit"]
    assert len(submits) == OBJECTS // BATCH and all(len(rows) == BATCH for rows in submits)
    for k, rows in enumerate(submits[:-1]):  # batch k+1 was handed to the pool before batch k's write ended
        written_k = events.index(("written", rows))
        submitted_next = events.index(("submit", submits[k + 1]))
        assert submitted_next < written_k, (k, events)
    assert sorted(_written_rows(events)) == sorted(object_ids)  # every row written once, in order of batches
    assert [rows for kind, rows in events if kind == "written"] == submits
    assert _roots(client, collection_id) == set(object_ids)


def test_a_stop_mid_pipeline_commits_only_written_rows(
    client: TestClient,
    namespace: dict[str, Any],
    runtime: Runtime,
    recorder: RecordingRunner,
    events: list[tuple[str, tuple[str, ...]]],
) -> None:
    collection_id, object_ids = _objects(client)
    stopper = threading.Thread(target=runtime.stop_background)
    stopper_started = threading.Event()  # the submit count rises before the hook starts the stopper

    def stop_the_scheduler() -> None:
        """At the first batch of the second chunk: the scheduler stops (a worker shutting down)."""
        stopper.start()
        stopper_started.set()
        deadline = time.monotonic() + 30
        while not runtime.scheduler.stopping:
            assert time.monotonic() < deadline
            time.sleep(0.01)

    recorder.hook = (CHUNK // BATCH + 1, stop_the_scheduler)
    batch_id, task_id = _submit(client, object_ids)
    assert stopper_started.wait(120), events
    stopper.join(60)
    assert not stopper.is_alive(), "the scheduler did not stop within 60 s"
    written = _written_rows(events)
    with runtime.db.read_session() as session:
        tier = session.get(BatchTier, (batch_id, 0))
        assert tier is not None and tier.manifest_key is not None
        state = tier.checkpoint["collections"][collection_id]
        rows = [row for chunk in read_manifest(runtime.blobs, tier.manifest_key, 100) for row in chunk]
    claimed = [rows[at].row_id for at in range(len(rows)) if at in RowRanges(state["done"])]
    # The stop came while batch 2 extracted and batch 3 was being submitted: batch 1 alone was written,
    # batch 2 was dropped unwritten, and the checkpoint claims exactly what was written.
    assert claimed == written == object_ids[:BATCH], events
    runtime.start_background()  # the tier was handed back: it is taken up again from its checkpoint
    assert wait_task(client, task_id, timeout=120)["status"] == "COMPLETED"
    assert sorted(_written_rows(events)) == sorted(object_ids)  # no row written twice, none left out
    assert _roots(client, collection_id) == set(object_ids)
