"""The picture's coordinates across runs: `layout_stability` (none, align, transform).

Every run's projection is one affine map, `coords = x @ W + b` (PCA fitted on the run's sample,
possibly followed by a similarity transform). It is kept beside the run's Parquet
(`projection.json`), so a later run can reuse it.

- `none`: the run's own PCA.
- `align` (the default): the run's own PCA, then registered onto the previous run's coordinates
  by the least-squares similarity transform (rotation or reflection, one scale, a shift:
  orthogonal Procrustes) computed over the documents of this run's sample that the previous run
  also placed; at least `MIN_SHARED` of them, else the raw layout, and the run says why.
- `transform`: the previous run's saved map itself, when it has the same input dimensions and
  components (the same documents land on the same pixels); else `align`, else the raw layout.

Pure post-processing of coordinates: groups and distances never change.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from strataflow.blobs import BlobStore
from strataflow.services.clusters.artifact import read_batches

MIN_SHARED = 20
MODES = ("none", "align", "transform")


@dataclass
class Projection:
    """coords = x @ weights + offset (the shape the Assigner and the groups call `transform` on)."""

    weights: np.ndarray  # width x components, float64
    offset: np.ndarray  # components

    @classmethod
    def of_pca(cls, pca: Any) -> Projection:
        weights = np.asarray(pca.components_, dtype=np.float64).T
        return cls(weights, -np.asarray(pca.mean_, dtype=np.float64) @ weights)

    @property
    def components(self) -> int:
        return int(self.weights.shape[1])

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(vectors @ self.weights.astype(np.float32) + self.offset, dtype=np.float32)

    def then(self, scale: float, rotation: np.ndarray, source_mean: np.ndarray, target_mean: np.ndarray) -> Projection:
        """This map followed by y -> scale * (y - source_mean) @ rotation + target_mean."""
        weights = scale * self.weights @ rotation
        return Projection(weights, scale * (self.offset - source_mean) @ rotation + target_mean)

    def to_json(self) -> bytes:
        return json.dumps({"weights": self.weights.tolist(), "offset": self.offset.tolist()}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Projection:
        body = json.loads(data)
        return cls(np.asarray(body["weights"], dtype=np.float64), np.asarray(body["offset"], dtype=np.float64))


def projection_key(artifact_key: str) -> str:
    return posixpath.join(posixpath.dirname(artifact_key), "projection.json")


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """scale, rotation (orthogonal, reflections allowed), source mean, target mean minimising
    || scale * (source - source_mean) @ rotation + target_mean - target ||^2."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    a, b = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    spread = float((a**2).sum())
    scale = float(singular.sum()) / spread if spread > 0 else 1.0
    return scale, rotation, source_mean, target_mean


@dataclass
class Previous:
    """The run a new layout is stabilised against: its id, Parquet and saved projection key."""

    run_id: str
    artifact_key: str


def _load_projection(blobs: BlobStore, previous: Previous) -> Projection | None:
    key = projection_key(previous.artifact_key)
    if blobs.head(key) is None:
        return None
    with blobs.open(key) as handle:
        return Projection.from_json(handle.read())


def _previous_coords(
    blobs: BlobStore, previous: Previous, keys: list[tuple[str, str]], components: int
) -> tuple[np.ndarray, np.ndarray]:
    """(row numbers in `keys`, the previous run's coordinates of those documents)."""
    wanted = {key: row for row, key in enumerate(keys)}
    ids = pa.array(sorted({doc for doc, _ in keys}), pa.string())
    axes = ["x", "y", "z"][:components]
    rows: list[int] = []
    coords: list[np.ndarray] = []
    for batch in read_batches(blobs, previous.artifact_key, ["document_id", "collection_id", *axes]):
        hit = pc.is_in(batch.column("document_id"), value_set=ids)
        picked = batch.filter(hit)
        if not picked.num_rows:
            continue
        values = np.column_stack([picked.column(a).to_numpy(zero_copy_only=False) for a in axes])
        for i, (doc, col) in enumerate(
            zip(picked.column("document_id").to_pylist(), picked.column("collection_id").to_pylist(), strict=True)
        ):
            row = wanted.get((doc, col))
            if row is not None and np.all(np.isfinite(values[i])):
                rows.append(row)
                coords.append(values[i])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, components))
    return np.asarray(rows, dtype=np.int64), np.vstack(coords).astype(np.float64)


def stabilise(
    blobs: BlobStore,
    mode: str,
    fresh: Projection,
    sample: np.ndarray,
    sample_keys: list[tuple[str, str]],
    previous: Previous | None,
) -> tuple[Projection, str, str]:
    """The projection a run uses, what was applied (`none`, `aligned`, `transform`) and why."""
    if mode == "none":
        return fresh, "none", "layout_stability is 'none': an independent layout"
    if previous is None:
        return fresh, "none", "first run: no previous layout to keep"
    notes: list[str] = []
    if mode == "transform":
        saved = _load_projection(blobs, previous)
        if saved is not None and saved.weights.shape == fresh.weights.shape:
            return saved, "transform", f"coordinates projected through run {previous.run_id}'s saved projection"
        notes.append(
            f"run {previous.run_id} has no compatible saved projection"
            + ("" if saved is None else f" ({saved.weights.shape[0]}-d to {saved.components}, not the same)")
        )
    rows, target = _previous_coords(blobs, previous, sample_keys, fresh.components)
    if len(rows) < MIN_SHARED:
        notes.append(f"only {len(rows)} shared documents with run {previous.run_id} (minimum {MIN_SHARED})")
        return fresh, "none", "; ".join(notes)
    scale, rotation, source_mean, target_mean = similarity(fresh.transform(sample[rows]).astype(np.float64), target)
    notes.append(f"aligned to run {previous.run_id} on {len(rows)} shared documents")
    return fresh.then(scale, rotation, source_mean, target_mean), "aligned", "; ".join(notes)
