"""A run's per-document results as one Parquet file in blob storage.

One row per clustered document: its id and collection, its group (`cluster_id`, `cluster_index`,
-1 for noise), its distance to the group's centroid, and its projected coordinates (x, y, z).
The file is written once by the run and never changed; groups, visualization, export and
enrichment all read it in record batches, so no reader holds the whole run in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from strataflow.blobs import BlobStore

SCHEMA = pa.schema(
    [
        pa.field("document_id", pa.string(), nullable=False),
        pa.field("collection_id", pa.string(), nullable=False),
        pa.field("cluster_id", pa.string(), nullable=False),
        pa.field("cluster_index", pa.int32(), nullable=False),
        pa.field("distance_to_centroid", pa.float32()),
        pa.field("x", pa.float32()),
        pa.field("y", pa.float32()),
        pa.field("z", pa.float32()),
    ]
)
NOISE = "noise"


def artifact_key(namespace_id: str, cluster_id: str, run_id: str) -> str:
    return f"clusters/{namespace_id}/{cluster_id}/{run_id}/assignments.parquet"


def cluster_name(index: int) -> str:
    return NOISE if index < 0 else f"cl_{index}"


class ArtifactWriter:
    """Appends chunks to a local Parquet file, then stores it in the blob store once."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="strataflow-cluster-")
        self.path = Path(self._dir.name) / "assignments.parquet"
        self._writer = pq.ParquetWriter(self.path, SCHEMA, compression="zstd")
        self.rows = 0

    def write(
        self,
        ids: list[str],
        collections: list[str],
        labels: np.ndarray,
        distances: np.ndarray | None,
        coords: np.ndarray | None,
        names: list[str] | None = None,
    ) -> None:
        n = len(ids)
        columns: dict[str, Any] = {
            "document_id": pa.array(ids, pa.string()),
            "collection_id": pa.array(collections, pa.string()),
            "cluster_id": _names(names, labels),
            "cluster_index": pa.array(labels.astype(np.int32)),
            "distance_to_centroid": pa.array(distances.astype(np.float32), mask=~np.isfinite(distances))
            if distances is not None
            else pa.nulls(n, pa.float32()),
        }
        for axis, name in enumerate(("x", "y", "z")):
            columns[name] = (
                pa.array(coords[:, axis].astype(np.float32))
                if coords is not None and coords.shape[1] > axis
                else pa.nulls(n, pa.float32())
            )
        self._writer.write_table(pa.table(columns, schema=SCHEMA))
        self.rows += n

    def store(self, blobs: BlobStore, key: str) -> None:
        self._writer.close()
        with self.path.open("rb") as handle:
            blobs.put_stream(key, handle, "application/vnd.apache.parquet")

    def close(self) -> None:
        self._writer.close()
        self._dir.cleanup()


def _names(names: list[str] | None, labels: np.ndarray) -> pa.Array:
    """Each label's group name (noise for -1), taken from one small lookup array."""
    top = int(labels.max(initial=-1)) + 1
    lookup = pa.array(
        [NOISE, *((names[i] if names else cluster_name(i)) for i in range(max(top, len(names or []))))], pa.string()
    )
    return lookup.take(pa.array(labels.astype(np.int64) + 1))


def read_batches(
    blobs: BlobStore, key: str, columns: list[str] | None = None, batch_size: int = 65_536
) -> Iterator[pa.RecordBatch]:
    """The stored file in record batches (it is downloaded to a temporary file first: Parquet needs seeks)."""
    with tempfile.TemporaryDirectory(prefix="strataflow-cluster-") as folder:
        path = Path(folder) / "assignments.parquet"
        with path.open("wb") as out:
            for chunk in blobs.iter_chunks(key):
                out.write(chunk)
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns)


def row_count(blobs: BlobStore, key: str) -> int:
    return sum(batch.num_rows for batch in read_batches(blobs, key, ["cluster_index"]))
