"""Reading a cluster's vectors from LanceDB in chunks, with a uniform sample when asked for fewer.

A run never copies a table: `chunks()` yields one record batch at a time, turned into a float32
matrix (several features concatenated, each block L2-normalised and weighted when there are
several). Sampling picks row positions up front (a seeded uniform choice over the rows counted at
the start), so every pass over the data sees the same points.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from strataflow.index.store import DocumentIndex
from strataflow.store.tables import Collection

CHUNK_ROWS = 8192
LOAD_ROWS = 16_384  # batches read into the in-memory matrix (larger ones keep more in flight: memory)


@dataclass
class Chunk:
    ids: list[str]
    collections: list[str]
    vectors: np.ndarray  # float32, rows x dimensions


class ChunkSource(Protocol):
    """Anything that yields the selected points chunk by chunk, the same points on every pass."""

    def chunks(self, rows: int = ...) -> Iterator[Chunk]: ...


@dataclass
class VectorSource:
    """The selected points of a run, over every collection of the cluster, readable many times."""

    index: DocumentIndex
    collections: list[Collection]
    columns: dict[str, dict[str, str]]  # collection_id -> feature uri -> column
    feature_uris: list[str]
    dimensions: dict[str, int]
    wheres: dict[str, str | None]
    normalize: bool = True
    weights: dict[str, float] = field(default_factory=dict)
    positions: np.ndarray | None = None  # sorted global row positions to keep; None keeps all
    total: int = 0

    @property
    def width(self) -> int:
        return sum(self.dimensions[u] for u in self.feature_uris)

    @property
    def points(self) -> int:
        return self.total if self.positions is None else len(self.positions)

    def count(self) -> int:
        self.total = sum(self.index.count(c.collection_id, self.wheres[c.collection_id]) for c in self.collections)
        return self.total

    def select(self, points: int, seed: int) -> None:
        """Keep a uniform sample of `points` rows (all of them when there are no more)."""
        if points >= self.total:
            self.positions = None
            return
        rng = np.random.default_rng(seed)
        self.positions = np.sort(rng.choice(self.total, size=points, replace=False))

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
        offset = 0
        for collection in self.collections:
            cid = collection.collection_id
            names = [self.columns[cid][u] for u in self.feature_uris]
            for batch in self.index.scan(cid, ["document_id", *names], self.wheres[cid], rows):
                n = batch.num_rows
                keep = self._kept(offset, n)
                offset += n
                if keep is not None and len(keep) == 0:
                    continue
                matrix = self._matrix(batch, names)
                ids = batch.column("document_id").to_pylist()
                if keep is not None:
                    matrix = matrix[keep]
                    ids = [ids[i] for i in keep]
                yield Chunk(ids, [cid] * len(ids), matrix)

    def _kept(self, offset: int, n: int) -> np.ndarray | None:
        if self.positions is None:
            return None
        lo, hi = np.searchsorted(self.positions, [offset, offset + n])
        return self.positions[lo:hi] - offset

    def _matrix(self, batch: pa.RecordBatch, names: list[str]) -> np.ndarray:
        blocks = []
        for uri, name in zip(self.feature_uris, names, strict=True):
            column = batch.column(name)
            block = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
            block = block.reshape(len(column), self.dimensions[uri])
            if len(names) > 1:
                if self.normalize:
                    norms = np.linalg.norm(block, axis=1, keepdims=True)
                    block = block / np.where(norms == 0, 1.0, norms)
                block = block * np.float32(self.weights.get(uri, 1.0))
            blocks.append(block)
        return blocks[0] if len(blocks) == 1 else np.hstack(blocks)

    def load(self) -> tuple[np.ndarray, list[str], list[str]]:
        """Every selected point in one matrix (for the algorithms that need them all at once).

        The matrix is allocated once at its final size and each Arrow batch is copied into its rows
        (the batch's float32 values are viewed, not converted): one copy of the vectors in all."""
        matrix = np.empty((self.points, self.width), dtype=np.float32)
        ids: list[str] = []
        collections: list[str] = []
        filled = 0
        for chunk in self.chunks(LOAD_ROWS):
            n = len(chunk.ids)
            if filled + n > len(matrix):  # rows were added since the count: keep what was planned
                n = len(matrix) - filled
            matrix[filled : filled + n] = chunk.vectors[:n]
            ids += chunk.ids[:n]
            collections += chunk.collections[:n]
            filled += n
            if filled == len(matrix):
                break
        return matrix[:filled], ids, collections


def payloads(source: VectorSource, keys: list[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    """(source object id, payload) of each (document id, collection id), in one scan per collection
    (what face_cluster_merge reads: frames, boxes, scenes); a missing document gives ("", {})."""
    wanted: dict[str, set[str]] = {}
    for doc, col in keys:
        wanted.setdefault(col, set()).add(doc)
    found: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for collection in source.collections:
        cid = collection.collection_id
        if cid not in wanted:
            continue
        columns = ["document_id", "source_object_id", "payload"]
        for batch in source.index.scan(cid, columns, source.wheres[cid], LOAD_ROWS):
            rows = batch.to_pydict()
            for doc, obj, payload in zip(*(rows[c] for c in columns), strict=True):
                if doc in wanted[cid]:
                    found[(doc, cid)] = (obj or "", json.loads(payload) if payload else {})
    return [found.get(key, ("", {})) for key in keys]


def sample_rows(source: VectorSource, size: int, seed: int) -> np.ndarray:
    """A uniform sample of at most `size` of the selected points, in one pass (reservoir-free: the
    positions are chosen among the selected ones up front)."""
    return sample_points(source, size, seed)[0]


def sample_points(source: VectorSource, size: int, seed: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """`sample_rows`, with each sampled point's (document id, collection id)."""
    chosen = np.sort(np.random.default_rng(seed).choice(source.points, size=min(size, source.points), replace=False))
    out = np.empty((len(chosen), source.width), dtype=np.float32)
    keys: list[tuple[str, str]] = []
    seen = filled = 0
    for chunk in source.chunks(LOAD_ROWS):
        n = len(chunk.ids)
        lo, hi = np.searchsorted(chosen, [seen, seen + n])
        take = chosen[lo:hi] - seen
        out[filled : filled + len(take)] = chunk.vectors[take]
        keys += [(chunk.ids[i], chunk.collections[i]) for i in take.tolist()]
        filled += len(take)
        seen += n
    return out[:filled], keys


def describe(source: VectorSource) -> dict[str, Any]:
    return {"points": source.points, "available": source.total, "dimensions": source.width}
