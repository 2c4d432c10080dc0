"""Tier manifests: the input rows of one tier, as Parquet in blob storage.

Writers and readers stream in row groups, so memory is bounded by the chunk
size, never by the size of the batch. A row carries the identity of its
source (object or upstream document) and a JSON payload the runner maps to
extractor inputs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from strataflow.blobs import BlobStore
from strataflow.engine.row_ranges import RowRanges

DEFAULT_CHUNK_ROWS = 2_000

# A row's position in its manifest: not stored, added where Ray Data reads the manifest, and carried
# through the stage to the driver, which records the done rows by position (engine/row_ranges.py).
ROW_INDEX = "row_index"

MANIFEST_SCHEMA = pa.schema(
    [
        ("row_id", pa.string()),
        ("root_object_id", pa.string()),
        ("root_bucket_id", pa.string()),
        ("source_type", pa.string()),  # "bucket" | "collection"
        ("source_object_id", pa.string()),
        ("source_document_id", pa.string()),
        ("source_collection_id", pa.string()),
        ("lineage_path", pa.string()),
        ("lineage_chain", pa.string()),  # JSON list of steps
        ("payload", pa.string()),  # JSON: object blobs + metadata, or document fields
    ]
)


@dataclass
class ManifestRow:
    row_id: str
    root_object_id: str
    root_bucket_id: str
    source_type: str
    payload: dict[str, Any]
    source_object_id: str | None = None
    source_document_id: str | None = None
    source_collection_id: str | None = None
    lineage_path: str = ""
    lineage_chain: list[dict[str, Any]] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["payload"] = json.dumps(self.payload, default=str)
        record["lineage_chain"] = json.dumps(self.lineage_chain, default=str)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ManifestRow:
        values = dict(record)
        values["payload"] = json.loads(values["payload"] or "{}")
        values["lineage_chain"] = json.loads(values["lineage_chain"] or "[]")
        return cls(**values)


def manifest_key(namespace_id: str, batch_id: str, tier_num: int) -> str:
    return f"{namespace_id}/manifests/{batch_id}/tier_{tier_num}.parquet"


class ManifestWriter:
    """Buffers rows and flushes a row group every `chunk_rows`; uploads on close."""

    def __init__(self, blobs: BlobStore, key: str, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        self.blobs = blobs
        self.key = key
        self.chunk_rows = chunk_rows
        self.rows_written = 0
        self._buffer: list[dict[str, Any]] = []
        handle, path = tempfile.mkstemp(suffix=".parquet")  # a name only: Parquet opens the file itself
        os.close(handle)
        self._path = Path(path)
        self._writer = pq.ParquetWriter(path, MANIFEST_SCHEMA, compression="zstd")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._writer.close()
            self._path.unlink(missing_ok=True)

    def write(self, rows: Iterable[ManifestRow]) -> None:
        for row in rows:
            self._buffer.append(row.to_record())
            if len(self._buffer) >= self.chunk_rows:
                self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=MANIFEST_SCHEMA))
            self.rows_written += len(self._buffer)
            self._buffer = []

    def close(self) -> None:
        self._flush()
        self._writer.close()
        try:
            with open(self._path, "rb") as handle:
                self.blobs.put_stream(self.key, handle, "application/vnd.apache.parquet")
        finally:
            self._path.unlink(missing_ok=True)


def write_manifest(
    blobs: BlobStore, key: str, rows: Iterable[ManifestRow], chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> int:
    with ManifestWriter(blobs, key, chunk_rows) as writer:
        writer.write(rows)
    return writer.rows_written


def read_manifest(blobs: BlobStore, key: str, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[list[ManifestRow]]:
    """Yield the manifest in chunks of at most `chunk_rows` rows."""
    with tempfile.NamedTemporaryFile(suffix=".parquet") as local:
        for chunk in blobs.iter_chunks(key):
            local.write(chunk)
        local.flush()
        parquet = pq.ParquetFile(local.name)
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield [ManifestRow.from_record(r) for r in batch.to_pylist()]


def count_rows(blobs: BlobStore, key: str) -> int:
    with tempfile.NamedTemporaryFile(suffix=".parquet") as local:
        for chunk in blobs.iter_chunks(key):
            local.write(chunk)
        local.flush()
        return int(pq.ParquetFile(local.name).metadata.num_rows)


def unfinished_rows(table: pa.Table, done: RowRanges) -> pa.Table:
    """The manifest's rows that are not `done`, each with its position in the manifest (ROW_INDEX)."""
    pieces = [
        table.slice(start, end - start).append_column(ROW_INDEX, pa.array(np.arange(start, end, dtype=np.int64)))
        for start, end in done.gaps(table.num_rows)
    ]
    if not pieces:
        return table.slice(0, 0).append_column(ROW_INDEX, pa.array([], pa.int64()))
    return pa.concat_tables(pieces)
