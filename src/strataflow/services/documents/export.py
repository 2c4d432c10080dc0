"""Export a collection's documents to blob storage: one Parquet, JSON lines or CSV file, or the
tar shards of a WebDataset (`webdataset.py`), with the vectors in a Parquet file of their own.

The collection is read in record batches (`DocumentIndex.scan`) and each batch is written out
before the next is read, so memory holds one batch whatever the collection's size. Parquet and
CSV need one type per column before their first row: a first pass over the same rows (user fields
only, no vectors) finds the columns and their types, keeping only a set of kinds per column.

Files are written to a temporary directory and uploaded only once complete, so a failed export
leaves nothing in the store. They live under the collection's blob prefix, which goes with the
collection when it is deleted.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from strataflow.blobs import BlobStore, WrittenBlob
from strataflow.clock import utcnow
from strataflow.errors import BadRequestError, ConflictError
from strataflow.ids import new_id
from strataflow.index.records import StoredDocument, from_row
from strataflow.index.store import DocumentIndex
from strataflow.paths import value_at
from strataflow.schemas.collections import CollectionExportRequest
from strataflow.services.collections.crud import document_blob_prefix
from strataflow.services.documents.crud import where_of
from strataflow.services.documents.model import PRESIGNED_GET_SECONDS, document_view, vector_names
from strataflow.services.documents.webdataset import (
    Media,
    MediaSummary,
    ShardWriter,
    fetch_media,
    media_of,
    shard_pattern,
)
from strataflow.store.db import Database
from strataflow.store.tables import Collection

BATCH_ROWS = 2048
MAX_PATH_DEPTH = 32
# Lineage columns, after the selected ones. source_content_hash is always null: a document records
# the object it came from but not a hash of the bytes it was made from, and the object's blobs may
# have been replaced since, so a hash read from them now could claim a provenance that is not true.
LINEAGE_FIELDS = ("lineage_chain", "source_content_hash", "document_created_at")
_DOCUMENT_COLUMNS = ["document_id", "collection_id", "created_at", "updated_at", "payload", "internal"]
_FILES = {
    "parquet": ("documents.parquet", "application/vnd.apache.parquet"),
    "json": ("documents.jsonl", "application/x-ndjson"),
    "csv": ("documents.csv", "text/csv"),
}
_VECTORS_FILE = "vectors.parquet"
MAX_LISTED_SHARDS = 200  # the response lists this many shards; shard_count and the pattern name all


@dataclass(frozen=True)
class ExportPlan:
    """A checked request: what to read, which columns to write, in which format."""

    collection_id: str
    fmt: str
    where: str | None
    select: list[str] | None  # dot paths into the document view; None: every user field
    limit: int | None
    lineage: bool
    per_shard: int  # webdataset: samples per tar shard
    media: bool  # webdataset: the source object's file in each sample
    # Vector columns to export (name: dimensions); None when not asked. Asked of a collection
    # without vectors, the vectors file holds document ids alone rather than going missing.
    vectors: dict[str, int] | None


@dataclass(frozen=True)
class Column:
    """A tabular column: its Arrow type, and whether its values are written JSON-encoded (objects,
    lists, or a mix of kinds that no single Arrow type holds)."""

    type: pa.DataType
    as_json: bool = False


@dataclass(frozen=True)
class WrittenFiles:
    documents: list[Path]  # one file, or the webdataset shards in order
    samples: list[int]  # documents in each
    vectors: Path | None
    media: MediaSummary | None = None


def plan_export(index: DocumentIndex, collection: Collection, request: CollectionExportRequest) -> ExportPlan:
    """Check everything a request asks before anything is read or written."""
    fmt = request.format or "parquet"
    if request.destination is not None:
        raise BadRequestError(
            "Export to your own storage (destination) is not supported: download the export"
            " through download_url and copy it there",
            {"field": "destination"},
        )
    for name, value in (("include_media", request.include_media), ("samples_per_shard", request.samples_per_shard)):
        if fmt != "webdataset" and value != CollectionExportRequest.model_fields[name].default:
            raise BadRequestError(f"{name} applies to the webdataset format only", {"field": name, "format": fmt})
    vectors = index.vector_columns(collection.collection_id) if request.include_vectors else None
    return ExportPlan(
        collection_id=collection.collection_id,
        fmt=fmt,
        where=where_of(collection, request.filters),
        select=_select_paths(request.select_fields, collection),
        limit=request.sample_size,
        lineage=request.include_lineage,
        per_shard=request.samples_per_shard,
        media=request.include_media,
        vectors=vectors,
    )


def _select_paths(paths: list[str] | None, collection: Collection) -> list[str] | None:
    """Distinct dot paths, document_id left out (it is always the first column)."""
    if paths is None:
        return None
    vectors = vector_names(collection)
    for path in paths:
        parts = path.split(".")
        if any(not part for part in parts) or len(parts) > MAX_PATH_DEPTH:
            raise BadRequestError(f"Invalid field path '{path}' in select_fields", {"field": path})
        if parts[0] in vectors:
            raise BadRequestError(
                f"'{path}' is a vector: vectors are exported to their own file with include_vectors",
                {"field": path},
            )
    return [p for p in dict.fromkeys(paths) if p != "document_id"]


def export_documents(
    db: Database, index: DocumentIndex, blobs: BlobStore, collection: Collection, request: CollectionExportRequest
) -> dict[str, Any]:
    """Write the export, upload it, and answer with presigned URLs (the SDK's CollectionExportResponse).
    `db` reads source objects, for a webdataset export's media only: one short session per batch,
    so a long export holds no database connection while it reads, writes and uploads."""
    plan = plan_export(index, collection, request)
    with tempfile.TemporaryDirectory(prefix="strataflow-export-") as folder:
        media = _MediaReader(db, blobs, collection.namespace_id, Path(folder)) if plan.media else None
        files = write_files(index, plan, Path(folder), media)
        prefix = f"{document_blob_prefix(collection)}exports/{new_id('export')}/"
        return _upload(blobs, plan, files, prefix)


def write_files(
    index: DocumentIndex, plan: ExportPlan, folder: Path, media: _MediaReader | None = None
) -> WrittenFiles:
    with ExitStack() as stack:
        sink = _open_sink(index, plan, folder, media)
        stack.callback(sink.close)
        vectors = None if plan.vectors is None else _VectorSink(folder / _VECTORS_FILE, plan.vectors)
        if vectors is not None:
            stack.callback(vectors.close)
        for docs, batch in _batches(index, plan):
            sink.write(docs, [_row(doc, plan) for doc in docs])
            if vectors is not None:
                vectors.write(batch)
    paths, samples = sink.files()
    return WrittenFiles(paths, samples, vectors.path if vectors is not None else None, media.summary if media else None)


def _open_sink(index: DocumentIndex, plan: ExportPlan, folder: Path, media: _MediaReader | None) -> _Sink:
    if plan.fmt == "webdataset":
        return _ShardSink(ShardWriter(folder, plan.per_shard), media)
    if plan.fmt == "json":
        return _JsonLinesSink(folder / _FILES["json"][0])
    return TableSink(folder / _FILES[plan.fmt][0], plan.fmt, _columns(index, plan))


def _batches(index: DocumentIndex, plan: ExportPlan) -> Iterator[tuple[list[StoredDocument], pa.RecordBatch]]:
    """The matching documents, one batch at a time, at most `plan.limit` of them; each batch also
    as read (its vector columns stay Arrow arrays: they are never made Python lists)."""
    left = plan.limit
    for batch in index.scan(plan.collection_id, [*_DOCUMENT_COLUMNS, *(plan.vectors or {})], plan.where, BATCH_ROWS):
        if left is not None:
            if left <= 0:
                return
            batch = batch.slice(0, left)
            left -= batch.num_rows
        yield [from_row(row, []) for row in batch.select(_DOCUMENT_COLUMNS).to_pylist()], batch


def _row(doc: StoredDocument, plan: ExportPlan) -> dict[str, Any]:
    """One exported row, values as they are (lists and objects included)."""
    if plan.select is None:
        row: dict[str, Any] = {"document_id": doc.document_id, "collection_id": doc.collection_id, **doc.payload}
    else:
        view = document_view(doc)
        row = {"document_id": doc.document_id, **{path: value_at(view, path) for path in plan.select}}
    if plan.lineage:
        row["lineage_chain"] = doc.lineage.get("chain") or []
        row["source_content_hash"] = None  # see LINEAGE_FIELDS
        row["document_created_at"] = doc.created_at or None
    return row


# -- column types (Parquet and CSV) ---------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: a bool is an int to Python
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "json"


def _column(kinds: set[str]) -> Column:
    kinds = kinds - {"null"}
    if kinds == {"bool"}:
        return Column(pa.bool_())
    if kinds == {"int"}:
        return Column(pa.int64())
    if kinds and kinds <= {"int", "float"}:
        return Column(pa.float64())
    if kinds <= {"string"}:  # only strings, or only nulls
        return Column(pa.string())
    return Column(pa.string(), as_json=True)


def _columns(index: DocumentIndex, plan: ExportPlan) -> dict[str, Column]:
    """Every column the export will have, in first-seen order, typed by the kinds of its values."""
    leading = ["document_id"] if plan.select is not None else ["document_id", "collection_id"]
    kinds: dict[str, set[str]] = {name: set() for name in leading}  # columns even of an empty export
    for docs, _ in _batches(index, replace(plan, vectors=None)):
        for doc in docs:
            for name, value in _row(doc, plan).items():
                kinds.setdefault(name, set()).add(_kind(value))
    if plan.select is not None:  # a path no document has is still a column, of nulls
        for path in plan.select:
            kinds.setdefault(path, set())
    if plan.lineage:
        kinds["lineage_chain"] = {"json"}  # a JSON-encoded list even when every chain is empty
        for name in LINEAGE_FIELDS[1:]:
            kinds[name] = {"string"}
    return {name: _column(found) for name, found in kinds.items()}


# -- writers ---------------------------------------------------------------------------------------


class _Sink(Protocol):
    def write(self, docs: list[StoredDocument], rows: list[dict[str, Any]]) -> None:
        """`rows` are `docs` as exported, in the same order."""
        ...

    def close(self) -> None: ...

    def files(self) -> tuple[list[Path], list[int]]:
        """The files written (closed) and how many documents each holds."""
        ...


class _JsonLinesSink:
    """One JSON object per line; objects and lists stay nested."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file = path.open("w", encoding="utf-8")
        self._count = 0

    def write(self, docs: list[StoredDocument], rows: list[dict[str, Any]]) -> None:
        self._file.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
        self._count += len(rows)

    def close(self) -> None:
        self._file.close()

    def files(self) -> tuple[list[Path], list[int]]:
        self.close()
        return [self._path], [self._count]


class TableSink:
    """Parquet or CSV through PyArrow's streaming writers, one record batch per batch read."""

    def __init__(self, path: Path, fmt: str, columns: dict[str, Column]) -> None:
        self._path = path
        self._count = 0
        self._columns = columns
        self._schema = pa.schema([pa.field(name, column.type) for name, column in columns.items()])
        self._writer: pq.ParquetWriter | pacsv.CSVWriter = (
            pq.ParquetWriter(path, self._schema, compression="zstd")
            if fmt == "parquet"
            else pacsv.CSVWriter(path, self._schema)
        )
        self._closed = False

    def write(self, docs: list[StoredDocument], rows: list[dict[str, Any]]) -> None:
        if any(name not in self._columns for row in rows for name in row):
            raise _changed()
        data = {name: [_cell(row.get(name), column.as_json) for row in rows] for name, column in self._columns.items()}
        try:
            batch = pa.RecordBatch.from_pydict(data, schema=self._schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise _changed() from exc
        self._writer.write_batch(batch)
        self._count += len(rows)

    def close(self) -> None:
        if not self._closed:  # a CSV writer closed twice raises
            self._closed = True
            self._writer.close()

    def files(self) -> tuple[list[Path], list[int]]:
        self.close()
        return [self._path], [self._count]


class _MediaReader:
    """Source files of a webdataset export's samples, copied to the export's folder one at a time."""

    def __init__(self, db: Database, blobs: BlobStore, namespace_id: str, folder: Path) -> None:
        self._db = db
        self._blobs = blobs
        self._namespace_id = namespace_id
        self._folder = folder
        self.summary = MediaSummary()

    def for_batch(self, docs: list[StoredDocument]) -> dict[str, Media | None]:
        with self._db.read_session() as session:
            return media_of(session, self._namespace_id, docs)

    def fetch(self, media: Media) -> Path | None:
        return fetch_media(self._blobs, media, self._folder, self.summary)


class _ShardSink:
    """WebDataset shards: each row as `<id>.json`, with its source file when media is asked for."""

    def __init__(self, writer: ShardWriter, media: _MediaReader | None) -> None:
        self._writer = writer
        self._media = media

    def write(self, docs: list[StoredDocument], rows: list[dict[str, Any]]) -> None:
        found = self._media.for_batch(docs) if self._media is not None else {}
        for doc, row in zip(docs, rows, strict=True):
            self._add(doc, row, found)

    def _add(self, doc: StoredDocument, row: dict[str, Any], found: dict[str, Media | None]) -> None:
        if self._media is None:
            self._writer.add(doc.document_id, row)
            return
        summary = self._media.summary
        if doc.document_id not in found:
            summary.objects_not_found += 1
        media = found.get(doc.document_id)
        copy = self._media.fetch(media) if media is not None else None
        if copy is None or media is None:
            summary.samples_without_media += 1
            self._writer.add(doc.document_id, row)
            return
        self._writer.add(doc.document_id, row, copy, media.extension)
        summary.samples_with_media += 1
        summary.members_written += 1
        summary.media_bytes += copy.stat().st_size
        copy.unlink()  # one source file on disk at a time, beside the shards

    def close(self) -> None:
        self._writer.close()

    def files(self) -> tuple[list[Path], list[int]]:
        shards = self._writer.close()
        return [shard.path for shard in shards], [shard.samples for shard in shards]


def _cell(value: Any, as_json: bool) -> Any:
    return json.dumps(value, ensure_ascii=False, default=str) if as_json and value is not None else value


def _changed() -> ConflictError:
    # The column pass and the write pass read the same rows; a row that fits no column was
    # written between them.
    return ConflictError("The collection changed while it was being exported; export it again")


class _VectorSink:
    """document_id and one fixed-size float32 list column per vector, straight from the batches read."""

    def __init__(self, path: Path, vectors: dict[str, int]) -> None:
        self.path = path
        self._names = ["document_id", *sorted(vectors)]
        self._schema = pa.schema(
            [pa.field("document_id", pa.string(), nullable=False)]
            + [pa.field(name, pa.list_(pa.float32(), dims)) for name, dims in sorted(vectors.items())]
        )
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch.select(self._names).cast(self._schema))

    def close(self) -> None:
        self._writer.close()


# -- upload ----------------------------------------------------------------------------------------


def _upload(blobs: BlobStore, plan: ExportPlan, files: WrittenFiles, prefix: str) -> dict[str, Any]:
    """Store every file under the export's own prefix; an upload that fails takes the prefix back
    out, so an export is there whole or not at all."""
    content_type = _FILES[plan.fmt][1] if plan.fmt in _FILES else "application/x-tar"
    try:
        written = [_put(blobs, prefix + path.name, path, content_type) for path in files.documents]
        if files.vectors is not None:
            _put(blobs, prefix + _VECTORS_FILE, files.vectors, "application/vnd.apache.parquet")
    except BaseException:
        blobs.delete_prefix(prefix)
        raise
    first = prefix + files.documents[0].name
    answer: dict[str, Any] = {
        "download_url": blobs.presigned_get_url(first, PRESIGNED_GET_SECONDS),
        "s3_path": blobs.uri(first),
        "format": plan.fmt,
        "document_count": sum(files.samples),
        "file_size_bytes": sum(w.size for w in written),
        "exported_at": utcnow().isoformat(),  # once every file is stored
    }
    if files.vectors is not None:
        answer["vectors_download_url"] = blobs.presigned_get_url(prefix + _VECTORS_FILE, PRESIGNED_GET_SECONDS)
        answer["vectors_s3_path"] = blobs.uri(prefix + _VECTORS_FILE)
    if plan.fmt == "webdataset":
        answer.update(_shards(blobs, prefix, files, written))
    return answer


def _put(blobs: BlobStore, key: str, path: Path, content_type: str) -> WrittenBlob:
    with path.open("rb") as handle:
        return blobs.put_stream(key, handle, content_type)


def _shards(blobs: BlobStore, prefix: str, files: WrittenFiles, written: list[WrittenBlob]) -> dict[str, Any]:
    """A webdataset export's shard fields: the prefix holding them, their pattern and the first 200."""
    shards = [
        {
            "filename": blob.key.rsplit("/", 1)[-1],
            "s3_path": blobs.uri(blob.key),
            "download_url": blobs.presigned_get_url(blob.key, PRESIGNED_GET_SECONDS),
            "sample_count": samples,
            "file_size_bytes": blob.size,
        }
        for blob, samples in zip(written[:MAX_LISTED_SHARDS], files.samples, strict=False)
    ]
    answer: dict[str, Any] = {
        "s3_path": blobs.uri(prefix.rstrip("/")) + "/",
        "shard_count": len(written),
        "shard_pattern": shard_pattern(len(written)),
        "shards": shards,
    }
    if files.media is not None:
        answer["media"] = files.media.as_dict()
    return answer
