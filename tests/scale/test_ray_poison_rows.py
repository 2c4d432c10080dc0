"""One dying worker fails one row on Ray Data too (issue 14, item 5).

Ray Data retries a dead stage actor's batch without limit, so a row that kills its
worker every time would loop for ever. The pipeline's poison ledger makes the retried
batch run row by row, and reports the row that killed its worker twice on its own as a
permanent failure instead of running it a third time. The stage here really dies
(os._exit, as the OOM killer or a native crash would end it).
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from ray import cloudpickle

from strataflow.blobs.local import LocalBlobStore
from strataflow.config import Settings
from strataflow.engine.runners.base import RunNotes
from strataflow.extractors.base import ErrorCategory, Resources

SCHEMA = pa.schema(
    [("row_id", pa.string()), ("status", pa.string()), ("error_type", pa.string()), ("error_message", pa.string())]
)


class DyingStage:
    """Answers 'ok' for every row, and ends its process on a row whose id starts with 'poison'."""

    def __init__(self, on_gpu: bool = False) -> None:
        self.on_gpu = on_gpu

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids = batch.column("row_id").to_pylist()
        if any(row_id.startswith("poison") for row_id in ids):
            os._exit(70)
        return pa.Table.from_pylist([{"row_id": i, "status": "ok"} for i in ids], schema=SCHEMA)

    def poisoned(self, batch: pa.Table, message: str) -> pa.Table:
        return pa.Table.from_pylist(
            [
                {
                    "row_id": i,
                    "status": "failed",
                    "error_type": ErrorCategory.VALIDATION.value,
                    "error_message": message,
                }
                for i in batch.column("row_id").to_pylist()
            ],
            schema=SCHEMA,
        )


def test_a_row_that_kills_its_ray_data_worker_fails_alone(tmp_path: Path, ray_runner: Any) -> None:
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers do not have tests/ on their path
    from strataflow.engine.runners.ray_data import Pipeline

    settings = Settings(data_dir=tmp_path / "data")
    blobs = LocalBlobStore(tmp_path / "blobs", b"secret", "http://127.0.0.1")
    ids = [f"row-{i}" for i in range(3)] + ["poison-3"] + [f"row-{i}" for i in range(4, 8)]
    manifest = io.BytesIO()
    pq.write_table(pa.table({"row_id": ids}), manifest)
    blobs.put_bytes("manifests/poison.parquet", manifest.getvalue())
    pipeline = Pipeline(
        name="poison-test",
        settings=settings,
        blobs=blobs,
        manifest_key="manifests/poison.parquet",
        stage=DyingStage,
        stage_kwargs={},
        resources=Resources(num_cpus=0.5, memory_mb=128),
        batch_size=4,
    )
    notes = RunNotes()
    out = pa.concat_tables(list(ray_runner.pipelines.run(pipeline, notes))).to_pylist()
    ray_runner.pipelines.pools.stop_idle()  # its warm stage actors would hold CPUs later tests of this Ray need

    by_id = {row["row_id"]: row for row in out}
    assert sorted(by_id) == sorted(ids) and len(out) == len(ids)  # every row once, none lost or doubled
    assert by_id.pop("poison-3")["error_type"] == "validation"
    assert all(row["status"] == "ok" for row in by_id.values())


def test_a_page_bomb_under_the_memory_ceiling_fails_alone_on_ray_actors(tmp_path: Path, ray_runner: Any) -> None:
    """Per-chunk actors: the bomb runs out of memory under the ceiling, then again alone in quarantine."""
    from strataflow.engine.runners.base import ExtractionCall
    from strataflow.engine.runners.ray import RayRunner
    from strataflow.extractors.base import ExtractorInput
    from strataflow.extractors.limits import ExtractionLimits
    from tests.bomb_factory import huge_page_pdf
    from tests.pdf_factory import TextPage, write_pdf

    runner = RayRunner.from_settings(Settings(engine="ray", ray_data=False, ray_actor_cpus=1.0, worker_memory_mb=900))
    rows = [
        ExtractorInput(
            f"good-{i}",
            {
                "pdf": write_pdf(
                    tmp_path / f"good{i}.pdf",
                    [
                        TextPage(
                            items=[
                                (72, 72, 11.0, f"Report number {i}: the northern lighthouse was inspected in spring.")
                            ]
                        )
                    ],
                )
            },
        )
        for i in range(4)
    ]
    rows.insert(2, ExtractorInput("bomb", {"pdf": huge_page_pdf(tmp_path / "bomb.pdf")}))
    call = ExtractionCall(
        "document_graph_extractor",
        "v1",
        {"run_ocr": False},
        rows,
        tmp_path / "work",
        limits=ExtractionLimits(pdf_page_max_pixels=10**12),
    )  # the ceiling, not the cap
    notes = RunNotes()
    try:
        results = {r.row_id: r for r in runner.submit(call, notes).result(timeout=600)}
    finally:
        runner.close()
    bomb = results.pop("bomb")
    assert bomb.error is not None and bomb.error.category == ErrorCategory.VALIDATION
    assert "STRATAFLOW_WORKER_MEMORY_MB" in bomb.error.message
    assert all(r.error is None and r.documents for r in results.values())
    assert any(line.startswith("quarantine actor ") for line in notes.logs)  # the reruns ran in quarantine
