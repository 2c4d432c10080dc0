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

SCHEMA = pa.schema([("row_id", pa.string()), ("status", pa.string()), ("error_type", pa.string()),
                    ("error_message", pa.string())])


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
        return pa.Table.from_pylist([{"row_id": i, "status": "failed", "error_type": ErrorCategory.VALIDATION.value,
                                      "error_message": message} for i in batch.column("row_id").to_pylist()],
                                    schema=SCHEMA)


def test_a_row_that_kills_its_ray_data_worker_fails_alone(tmp_path: Path, ray_runner: Any) -> None:
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers do not have tests/ on their path
    from strataflow.engine.runners.ray_data import Pipeline

    settings = Settings(data_dir=tmp_path / "data")
    blobs = LocalBlobStore(tmp_path / "blobs", b"secret", "http://127.0.0.1")
    ids = [f"row-{i}" for i in range(3)] + ["poison-3"] + [f"row-{i}" for i in range(4, 8)]
    manifest = io.BytesIO()
    pq.write_table(pa.table({"row_id": ids}), manifest)
    blobs.put_bytes("manifests/poison.parquet", manifest.getvalue())
    pipeline = Pipeline(name="poison-test", settings=settings, blobs=blobs, manifest_key="manifests/poison.parquet",
                        stage=DyingStage, stage_kwargs={}, resources=Resources(num_cpus=0.5, memory_mb=128),
                        batch_size=4)
    notes = RunNotes()
    out = pa.concat_tables(list(ray_runner.pipelines.run(pipeline, notes))).to_pylist()

    by_id = {row["row_id"]: row for row in out}
    assert sorted(by_id) == sorted(ids) and len(out) == len(ids)  # every row once, none lost or doubled
    assert by_id.pop("poison-3")["error_type"] == "validation"
    assert all(row["status"] == "ok" for row in by_id.values())
