"""DocumentIndex: the LanceDB database holding one documents table per collection.

Writes to one table are serialised: concurrent appends or merges on a Lance
table conflict or, for two merges inserting the same new id, duplicate it. A
thread lock covers one process; `locks` (index/locks.py) covers every process
that writes: a file lock next to the tables for a local directory, an advisory
lock in PostgreSQL for an index on S3 shared by several hosts. Upserts go through
`merge_insert` keyed on `document_id`, so writing a document twice leaves one.

Reads use strong consistency (every read sees the latest committed version),
so a worker's writes are visible to the API at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa

from strataflow.errors import BadRequestError, not_found
from strataflow.index.locks import FileTableLocks, TableLocks
from strataflow.index.records import (
    SEARCH_TEXT_COLUMN,
    StoredDocument,
    from_row,
    table_schema,
    to_arrow,
    vector_columns_of,
)

if TYPE_CHECKING:
    from lancedb.db import LanceDBConnection

log = logging.getLogger("strataflow.index")

SCAN_ALL = None  # LanceDB's default limit is 10 rows: every unbounded scan passes this explicitly
_ID_CHUNK = 500
_SCALAR_INDEXED = ("document_id", "root_object_id", "source_object_id", "source_document_id")
# Messages of LanceDB errors caused by what a filter says (bad regex, bad types), not by us.
_FILTER_PROBLEMS = ("Invalid input", "Query Execution error", "regex parse error", "Error during planning")


def quote_ids(ids: list[str]) -> str:
    return ", ".join("'" + i.replace("'", "''") + "'" for i in ids)


class DocumentIndex:
    """Documents and their vectors, one LanceDB table per collection."""

    def __init__(
        self,
        uri: str,
        *,
        vector_index_min_rows: int = 50_000,
        storage_options: dict[str, str] | None = None,
        locks: TableLocks | None = None,
    ) -> None:
        """`locks` is required for a remote index: only the caller knows what its writers share."""
        self.uri = uri
        self.vector_index_min_rows = vector_index_min_rows
        if locks is None:
            if "://" in uri:
                raise ValueError(f"an index at {uri} needs the locks its writers share")
            locks = FileTableLocks(Path(uri) / ".locks")
        self._process_locks = locks
        self._storage_options = storage_options
        self._connection: LanceDBConnection | None = None
        self._connecting = threading.Lock()
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @property
    def _db(self) -> LanceDBConnection:
        """The LanceDB connection, made on first use. LanceDB (with pandas and its REST client) was
        about a third of a server's import time: a process that never reads the index (an API
        replica's start, an admin command) no longer pays it, and a server is up before it does."""
        if self._connection is not None:  # every index call comes here: no lock once connected
            return self._connection
        with self._connecting:
            if self._connection is None:
                import lancedb

                self._connection = cast(
                    "LanceDBConnection",
                    lancedb.connect(
                        self.uri, read_consistency_interval=timedelta(0), storage_options=self._storage_options
                    ),
                )
            return self._connection

    # -- tables -------------------------------------------------------------------------------

    def create_table(self, collection_id: str, vector_columns: dict[str, int]) -> None:
        self._db.create_table(collection_id, schema=table_schema(vector_columns), exist_ok=True)
        self.ensure_text_index(collection_id)

    def ensure_text_index(self, collection_id: str) -> None:
        """The full-text index over `search_text`; tables made before it existed get the column first.

        Rows written after the index was built are still searched (LanceDB scans unindexed rows),
        and `maintain` folds them in.
        """
        from lancedb.index import FTS  # lancedb is imported on first use: see _db

        table = self._table(collection_id)
        if any(SEARCH_TEXT_COLUMN in index.columns for index in table.list_indices()):
            return
        with self.write_lock(collection_id):
            if SEARCH_TEXT_COLUMN not in table.schema.names:
                table.add_columns({SEARCH_TEXT_COLUMN: "CAST(NULL AS STRING)"})
            if not any(SEARCH_TEXT_COLUMN in index.columns for index in table.list_indices()):
                table.create_index(SEARCH_TEXT_COLUMN, config=FTS(with_position=False), replace=True)

    def drop_table(self, collection_id: str) -> None:
        with self.write_lock(collection_id):
            self._db.drop_table(collection_id, ignore_missing=True)

    def has_table(self, collection_id: str) -> bool:
        try:
            self._db.open_table(collection_id)
        except (ValueError, FileNotFoundError):
            return False
        return True

    def _table(self, collection_id: str) -> Any:
        try:
            return self._db.open_table(collection_id)
        except (ValueError, FileNotFoundError) as exc:
            raise not_found("Documents table of collection", collection_id) from exc

    def vector_columns(self, collection_id: str) -> dict[str, int]:
        return vector_columns_of(self._table(collection_id).schema)

    @contextmanager
    def write_lock(self, collection_id: str) -> Iterator[None]:
        """One writer of a table at a time: threads of this process, then every other process."""
        with self._guard:
            lock = self._locks.setdefault(collection_id, threading.Lock())
        with lock, self._process_locks.hold(collection_id):
            yield

    # -- writes -------------------------------------------------------------------------------

    def upsert(self, collection_id: str, documents: list[StoredDocument]) -> int:
        """Insert or overwrite by id. A rewritten document keeps its original `created_at`."""
        if not documents:
            return 0
        with self.write_lock(collection_id):
            self._merge(collection_id, documents)
        return len(documents)

    def append(self, collection_id: str, documents: list[StoredDocument]) -> int:
        """Add documents whose ids the table does not hold (the caller guarantees it): a plain append,
        without the merge's look-up of existing ids, which grows with the table."""
        if not documents:
            return 0
        with self.write_lock(collection_id):
            table = self._table(collection_id)
            if SEARCH_TEXT_COLUMN not in table.schema.names:
                table.add_columns({SEARCH_TEXT_COLUMN: "CAST(NULL AS STRING)"})
            table.add(to_arrow(documents, table_schema(vector_columns_of(table.schema))), on_bad_vectors="null")
        return len(documents)

    def append_table(self, collection_id: str, data: pa.Table) -> int:
        """Append rows already laid out as the table's columns (`table_schema`), ids new to the table:
        what writes hundreds of thousands of generated documents without a Python object per row."""
        if not data.num_rows:
            return 0
        with self.write_lock(collection_id):
            table = self._table(collection_id)
            if SEARCH_TEXT_COLUMN not in table.schema.names:
                table.add_columns({SEARCH_TEXT_COLUMN: "CAST(NULL AS STRING)"})
            table.add(data, on_bad_vectors="null")
        return int(data.num_rows)

    def schema_of(self, collection_id: str) -> pa.Schema:
        """The schema rows are written with (its JSON columns as JSON, which the stored one does not say)."""
        return table_schema(vector_columns_of(self._table(collection_id).schema))

    def replace_sources(
        self, collection_id: str, documents: list[StoredDocument], source_column: str, source_ids: list[str]
    ) -> int:
        """Upsert `documents` and remove other documents of the same sources (stale chunks of a re-run).

        Returns how many stale documents went away.
        """
        if source_column not in ("source_object_id", "source_document_id"):
            raise ValueError(f"not a source column: {source_column}")
        with self.write_lock(collection_id):
            if documents:
                self._merge(collection_id, documents)
            if not source_ids:
                return 0
            where = f"{source_column} IN ({quote_ids(source_ids)})"
            if documents:
                where += f" AND document_id NOT IN ({quote_ids([d.document_id for d in documents])})"
            return int(self._table(collection_id).delete(where).num_deleted_rows)

    def _merge(self, collection_id: str, documents: list[StoredDocument]) -> None:
        table = self._table(collection_id)
        unique = {d.document_id: d for d in documents}  # a batch naming one id twice keeps the last
        created = {d.document_id: d.created_at for d in self.get_many(collection_id, list(unique))}
        for doc in unique.values():
            doc.created_at = created.get(doc.document_id) or doc.created_at
        # Built with our own schema: its arrow.json columns are what LanceDB turns into JSONB. The
        # stored schema reports them as raw binary, and bytes written under it would not be JSONB.
        if SEARCH_TEXT_COLUMN not in table.schema.names:  # a table from before full-text search
            table.add_columns({SEARCH_TEXT_COLUMN: "CAST(NULL AS STRING)"})
        data = to_arrow(list(unique.values()), table_schema(vector_columns_of(table.schema)))
        # Vectors were checked (dimensions, finite values) in to_arrow; what LanceDB would call
        # "bad" here can only be a document without a vector, which stays null.
        merge = table.merge_insert("document_id").when_matched_update_all().when_not_matched_insert_all()
        merge.execute(data, on_bad_vectors="null")

    def delete(self, collection_id: str, where: str) -> int:
        with self.write_lock(collection_id):
            result = self._guarded(lambda: self._table(collection_id).delete(where))
        return int(result.num_deleted_rows)

    # -- reads --------------------------------------------------------------------------------

    def get_many(self, collection_id: str, ids: list[str], with_vectors: bool = False) -> list[StoredDocument]:
        found: list[StoredDocument] = []
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            found += self.query(
                collection_id, f"document_id IN ({quote_ids(chunk)})", limit=len(chunk), with_vectors=with_vectors
            )
        return found

    def get(self, collection_id: str, document_id: str, with_vectors: bool = False) -> StoredDocument | None:
        found = self.get_many(collection_id, [document_id], with_vectors)
        return found[0] if found else None

    def query(
        self,
        collection_id: str,
        where: str | None,
        *,
        order: list[tuple[str, bool]] | None = None,
        offset: int = 0,
        limit: int | None = SCAN_ALL,
        with_vectors: bool = False,
    ) -> list[StoredDocument]:
        """Documents matching `where`, ordered by columns [(name, ascending)], one page of them."""
        from lancedb.query import ColumnOrdering  # lancedb is imported on first use: see _db

        table = self._table(collection_id)
        vectors = list(vector_columns_of(table.schema))
        query = table.search().select(self._columns(table.schema, with_vectors))
        if where:
            query = query.where(where)
        if order:
            query = query.order_by([ColumnOrdering(column_name=c, ascending=a) for c, a in order])
        query = query.offset(offset).limit(limit)
        rows = self._guarded(lambda: query.to_arrow()).to_pylist()
        return [from_row(row, vectors if with_vectors else []) for row in rows]

    def select(
        self,
        collection_id: str,
        where: str | None,
        expressions: dict[str, str],
        *,
        order: list[tuple[str, bool]] | None = None,
        limit: int | None = SCAN_ALL,
    ) -> pa.Table:
        """Evaluate SQL expressions over matching rows (sort keys, group keys): every row, or the
        first `limit` in `order` [(column, ascending)], nulls last as in `query`."""
        from lancedb.query import ColumnOrdering

        query = self._table(collection_id).search().select(expressions)
        if where:
            query = query.where(where)
        if order:
            query = query.order_by([ColumnOrdering(column_name=c, ascending=a) for c, a in order])
        return self._guarded(lambda: query.limit(limit).to_arrow())

    def scan(
        self, collection_id: str, columns: list[str], where: str | None, batch_size: int = 8192
    ) -> Iterator[pa.RecordBatch]:
        """Matching rows in record batches of at most `batch_size`: memory stays bounded by one batch
        however large the table (clustering reads millions of vectors this way)."""
        query = self._table(collection_id).search().select(columns)
        if where:
            query = query.where(where)
        reader = self._guarded(lambda: query.limit(SCAN_ALL).to_batches(batch_size))
        for batch in reader:
            if batch.num_rows > batch_size:  # a reader may hand back larger batches than asked
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)
            elif batch.num_rows:
                yield batch

    def count(self, collection_id: str, where: str | None = None) -> int:
        if not self.has_table(collection_id):
            return 0
        return int(self._guarded(lambda: self._table(collection_id).count_rows(where)))

    @staticmethod
    def _columns(schema: pa.Schema, with_vectors: bool) -> list[str]:
        vectors = vector_columns_of(schema)
        return [f.name for f in schema if f.name != SEARCH_TEXT_COLUMN and (with_vectors or f.name not in vectors)]

    def nearest(
        self,
        collection_id: str,
        column: str,
        vector: list[float],
        k: int,
        where: str | None = None,
        with_vectors: bool = False,
    ) -> list[tuple[StoredDocument, float]]:
        """The k documents closest to `vector` by cosine distance (index when built, else exact)."""
        table = self._table(collection_id)
        query = (
            table.search(vector, vector_column_name=column)
            .distance_type("cosine")
            .select([*self._columns(table.schema, with_vectors), "_distance"])
            .limit(k)
        )
        if where:
            query = query.where(where, prefilter=True)
        rows = self._guarded(lambda: query.to_arrow()).to_pylist()
        names = list(vector_columns_of(table.schema)) if with_vectors else []
        return [(from_row(row, names), float(row["_distance"])) for row in rows]

    def text_search(
        self, collection_id: str, text: str, k: int, where: str | None = None
    ) -> list[tuple[StoredDocument, float]]:
        """The k best BM25 matches of `text` over every string of the payload (native inverted index)."""
        self.ensure_text_index(collection_id)
        table = self._table(collection_id)
        query = (
            table.search(text, query_type="fts", fts_columns=SEARCH_TEXT_COLUMN)
            .select([*self._columns(table.schema, False), "_score"])
            .limit(k)
        )
        if where:
            query = query.where(where, prefilter=True)
        rows = self._guarded(lambda: query.to_arrow()).to_pylist()
        return [(from_row(row, []), float(row["_score"])) for row in rows]

    @staticmethod
    def _guarded(run: Any) -> Any:
        """Run a read; LanceDB errors caused by a filter's content become a 400 naming the problem."""
        try:
            return run()
        except (RuntimeError, ValueError) as exc:
            message = str(exc)
            if any(marker in message for marker in _FILTER_PROBLEMS):
                raise BadRequestError(
                    f"The filter could not be applied: {message.splitlines()[0][:300]}", {"reason": message[:1000]}
                ) from exc
            raise

    # -- maintenance --------------------------------------------------------------------------

    def maintain(self, collection_id: str) -> None:
        """Build vector and scalar indexes once the table is large enough; fold in new rows after.

        Below `vector_index_min_rows` a search is an exact scan, which is fast and perfectly
        accurate at that size; above it an IVF_HNSW_SQ index keeps searches fast.
        """
        from lancedb.index import BTree, IvfHnswSq  # lancedb is imported on first use: see _db

        table = self._table(collection_id)
        rows = table.count_rows()
        if rows < self.vector_index_min_rows:
            return
        with self.write_lock(collection_id):
            indexed = {column for index in table.list_indices() for column in index.columns}
            built = False
            for column in vector_columns_of(table.schema):
                if column not in indexed and table.count_rows(f"{column} IS NOT NULL") >= self.vector_index_min_rows:
                    log.info("building vector index", extra={"collection_id": collection_id, "column": column})
                    table.create_index(column, config=IvfHnswSq(distance_type="cosine"))
                    built = True
            for column in _SCALAR_INDEXED:
                if column not in indexed:
                    table.create_index(column, config=BTree())
                    built = True
            if not built and self._unindexed_share(table) > 0.1:
                table.optimize()  # merges new rows into the existing indexes

    @staticmethod
    def _unindexed_share(table: Any) -> float:
        worst = 0.0
        for index in table.list_indices():
            stats = table.index_stats(index.name)
            if stats is not None:
                total = stats.num_indexed_rows + stats.num_unindexed_rows
                worst = max(worst, stats.num_unindexed_rows / total if total else 0.0)
        return worst
