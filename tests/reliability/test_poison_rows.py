"""One dying worker fails one row (issue 14, item 5).

A row that kills its worker (the kernel's OOM killer, a native crash) used to fail every
row sharing its extraction call, transiently, so a retry sent the same poison with the
same neighbours. Now the dead call's rows are narrowed down in a quarantine worker and
only the poison row fails, permanently.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.app import create_app
from strataflow.config import Settings
from strataflow.engine.runners.base import ExtractionCall
from strataflow.engine.runners.isolation import KILLS_BEFORE_PERMANENT, WorkerDied, isolate
from strataflow.engine.runners.local import LocalRunner
from strataflow.extractors.base import ErrorCategory, ExtractedDocument, ExtractorInput, OutOfMemory, RowResult
from strataflow.runtime import open_runtime
from tests.bomb_factory import huge_page_pdf
from tests.conftest import ADMIN_KEY
from tests.helpers import wait_task
from tests.pdf_factory import TextPage, write_pdf
from tests.reliability.poison_entry import die_on_poison


def _rows(count: int, poison_at: set[int]) -> list[ExtractorInput]:
    return [
        ExtractorInput(f"poison-{i}" if i in poison_at else f"row-{i}", {}, {"fields": {"n": i}, "vectors": {}})
        for i in range(count)
    ]


class _Worker:
    """A stand-in worker for the narrowing rule alone: it dies on poison, runs out of memory on greedy rows."""

    def __init__(self, greedy: frozenset[str] = frozenset(), broken: bool = False) -> None:
        self.greedy, self.broken = greedy, broken
        self.calls: list[list[str]] = []

    def __call__(self, rows: list[ExtractorInput]) -> list[RowResult]:
        self.calls.append([r.row_id for r in rows])
        if self.broken or any(r.row_id.startswith("poison") for r in rows):
            raise WorkerDied
        return [
            RowResult(r.row_id, error=OutOfMemory())
            if r.row_id in self.greedy
            else RowResult(r.row_id, documents=[ExtractedDocument({"n": r.source["fields"]["n"]})])
            for r in rows
        ]


def test_a_dead_call_is_narrowed_down_to_its_poison_rows() -> None:
    rows = _rows(16, {5, 11})
    worker = _Worker()
    results = isolate(rows, None, worker)
    assert [r.row_id for r in results] == [r.row_id for r in rows]
    for row, result in zip(rows, results, strict=True):
        if row.row_id.startswith("poison"):
            assert result.error is not None and result.error.category == ErrorCategory.VALIDATION
            assert "not retried" in result.error.message
        else:
            assert result.error is None and result.documents[0].fields["n"] == int(row.row_id.split("-")[1])
    # Each poison row ran alone exactly KILLS_BEFORE_PERMANENT times, and the narrowing stayed logarithmic.
    alone = [call for call in worker.calls if len(call) == 1 and call[0].startswith("poison")]
    assert sorted(alone) == sorted([["poison-5"]] * KILLS_BEFORE_PERMANENT + [["poison-11"]] * KILLS_BEFORE_PERMANENT)
    assert len(worker.calls) < 2 * len(rows)


def test_rows_out_of_memory_run_again_alone_and_fail_for_good() -> None:
    rows = _rows(6, set())
    first = [
        RowResult(r.row_id, error=OutOfMemory())
        if r.row_id in ("row-1", "row-4")
        else RowResult(r.row_id, documents=[ExtractedDocument({})])
        for r in rows
    ]
    worker = _Worker(greedy=frozenset({"row-4"}))  # row-1 fits once on its own: its neighbours held the memory
    results = isolate(rows, first, worker)
    assert results[1].error is None and results[1].documents
    assert results[4].error is not None and results[4].error.category == ErrorCategory.VALIDATION
    assert "STRATAFLOW_WORKER_MEMORY_MB" in results[4].error.message
    assert all(results[i].error is None for i in (0, 2, 3, 5))


def test_a_worker_that_dies_without_rows_blames_no_row() -> None:
    rows = _rows(3, set())
    results = isolate(rows, None, _Worker(broken=True))
    assert all(r.error is not None and r.error.category == ErrorCategory.RESOURCE for r in results)


def test_a_worker_process_that_dies_fails_only_its_poison_row(tmp_path: Path) -> None:
    """Real spawned workers that really die (os._exit), through the local runner."""
    runner = type("PoisonRunner", (LocalRunner,), {"entry": staticmethod(die_on_poison)})(1, 1)
    try:
        rows = _rows(10, {3})
        call = ExtractionCall("passthrough_extractor", "v1", {}, rows, tmp_path / "work")
        results = runner.submit(call).result(timeout=600)
        second = runner.submit(
            ExtractionCall("passthrough_extractor", "v1", {}, _rows(2, set()), tmp_path / "work")
        ).result(timeout=600)
    finally:
        runner.close()
    by_id = {r.row_id: r for r in results}
    poison = by_id.pop("poison-3")
    assert poison.error is not None and poison.error.category == ErrorCategory.VALIDATION
    assert all(r.error is None and r.documents[0].fields == {"n": int(i.split("-")[1])} for i, r in by_id.items())
    assert all(r.error is None for r in second)  # the rebuilt pool serves the next call


def test_a_call_queued_behind_a_dying_one_keeps_all_its_rows(tmp_path: Path) -> None:
    """The engine submits a batch's extraction before the one ahead of it answers (engine/tiers/overlap.py):
    when the worker dies, the pool breaks for the queued call too, whose rows did nothing wrong."""
    runner = type("PoisonRunner", (LocalRunner,), {"entry": staticmethod(die_on_poison)})(1, 1)
    try:
        dying = runner.submit(ExtractionCall("passthrough_extractor", "v1", {}, _rows(6, {2}), tmp_path / "a"))
        queued = runner.submit(ExtractionCall("passthrough_extractor", "v1", {}, _rows(4, set()), tmp_path / "b"))
        first, behind = dying.result(timeout=600), queued.result(timeout=600)
    finally:
        runner.close()
    assert [r.row_id for r in first if r.error is not None] == ["poison-2"]
    assert [r.row_id for r in behind] == [f"row-{i}" for i in range(4)] and all(r.error is None for r in behind)


# -- a real bomb among ten good PDFs, through a batch ------------------------------------------------------------

MEMORY_MB = 900  # a worker with MiniLM loaded fits well below; the bomb's page render needs more than 1.2 GB


@pytest.fixture
def bounded_client(tmp_path: Path) -> Iterator[TestClient]:
    # The page pixel cap is lifted so the bomb reaches the renderer: the memory ceiling must stop it.
    settings = Settings(
        data_dir=tmp_path / "data",
        api_key=ADMIN_KEY,
        task_poll_interval_s=0.05,
        worker_memory_mb=MEMORY_MB,
        pdf_max_page_pixels=10**12,
    )
    runner = LocalRunner(1, 1, settings.worker_memory_mb)
    runtime = open_runtime(settings, runner)
    try:
        with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
            client.headers.update({"Authorization": f"Bearer {ADMIN_KEY}"})
            assert client.post("/v1/namespaces", json={"namespace_name": "main"}).status_code == 200
            client.headers.update({"X-Namespace": "main"})
            yield client
    finally:
        runtime.close()
        runner.close()


def _pdf_object(client: TestClient, data: bytes) -> str:
    uri = f"data:application/pdf;base64,{base64.b64encode(data).decode()}"
    response = client.post(
        "/v1/buckets/pdfs/objects",
        json={"blobs": [{"property": "doc", "type": "pdf", "data": uri, "content_type": "application/pdf"}]},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["object_id"])


def test_a_huge_page_among_ten_pdfs_fails_alone_under_the_memory_ceiling(
    bounded_client: TestClient, tmp_path: Path
) -> None:
    client = bounded_client
    bucket = client.post(
        "/v1/buckets", json={"bucket_name": "pdfs", "bucket_schema": {"properties": {"doc": {"type": "pdf"}}}}
    )
    assert bucket.status_code == 200, bucket.text
    collection = client.post(
        "/v1/collections",
        json={
            "collection_name": "pages",
            "source": {"type": "bucket", "bucket_ids": [bucket.json()["bucket_id"]]},
            "feature_extractor": {
                "feature_extractor_name": "document_graph_extractor",
                "version": "v1",
                "input_mappings": {"pdf": "doc"},
                "parameters": {"extractor_type": "document_graph_extractor", "run_ocr": False},
            },
        },
    )
    assert collection.status_code == 200, collection.text
    good = [
        _pdf_object(
            client,
            write_pdf(
                tmp_path / f"good{i}.pdf",
                [
                    TextPage(
                        items=[(72, 72, 11.0, f"Report number {i}: the northern lighthouse was inspected in spring.")]
                    )
                ],
            ).read_bytes(),
        )
        for i in range(10)
    ]
    bomb = _pdf_object(client, huge_page_pdf(tmp_path / "bomb.pdf").read_bytes())
    ids = good[:4] + [bomb] + good[4:]  # in the middle of one extraction call

    batch = client.post("/v1/buckets/pdfs/batches", json={"object_ids": ids}).json()
    task = client.post(f"/v1/buckets/pdfs/batches/{batch['batch_id']}/submit", json={}).json()
    assert wait_task(client, task["task_id"], timeout=600)["status"] == "COMPLETED_WITH_ERRORS"
    done: dict[str, Any] = client.get(f"/v1/buckets/pdfs/batches/{batch['batch_id']}").json()
    assert done["status"] == "COMPLETED_WITH_ERRORS" and done["error_summary"] == {"validation": 1}

    failed = client.get(f"/v1/buckets/pdfs/batches/{batch['batch_id']}/failed-documents").json()["results"]
    assert [(f["object_id"], f["error_type"], f["is_transient"]) for f in failed] == [(bomb, "validation", False)]
    assert "memory" in failed[0]["error_message"] and "STRATAFLOW_WORKER_MEMORY_MB" in failed[0]["error_message"]
    documents = client.post(
        f"/v1/collections/{collection.json()['collection_id']}/documents/list?limit=100", json={}
    ).json()["results"]
    assert {d["_internal"]["lineage"]["root_object_id"] for d in documents} == set(good)
