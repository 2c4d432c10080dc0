"""Applying a cluster's preprocessing steps (services/clusters/preprocessing.py checks them).

The algorithm clusters the transformed points; centroids, distances, metrics and the picture stay
in the original feature space, so runs with and without preprocessing compare, and a centroid can
anchor a taxonomy node next to the documents it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from strataflow.engine.clusters.vectors import Chunk, ChunkSource


class Whitening:
    """PCA whitening fitted on a sample: decorrelated, unit-variance coordinates (invertible)."""

    def __init__(self, sample: np.ndarray, regularization: float) -> None:
        self.mean = sample.mean(axis=0)
        covariance = np.cov(sample - self.mean, rowvar=False)
        values, vectors = np.linalg.eigh(np.atleast_2d(covariance))
        scale = np.sqrt(np.maximum(values, max(regularization, 1e-12)))
        self.forward = (vectors / scale).astype(np.float32)
        self.backward = (vectors * scale).T.astype(np.float32)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray((matrix - self.mean) @ self.forward, dtype=np.float32)

    def inverse(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(matrix @ self.backward + self.mean, dtype=np.float32)


class Linear:
    """The linear steps in order, as one map with its inverse (for streamed runs)."""

    def __init__(self, steps: list[dict[str, Any]], sample: np.ndarray) -> None:
        self.parts: list[Whitening] = []
        current = sample
        for step in steps:
            if step["method"] == "whitening":
                part = Whitening(current, float(step["regularization"]))
                self.parts.append(part)
                current = part(current)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        for part in self.parts:
            matrix = part(matrix)
        return matrix

    def inverse(self, matrix: np.ndarray) -> np.ndarray:
        for part in reversed(self.parts):
            matrix = part.inverse(matrix)
        return matrix


def transform_all(steps: list[dict[str, Any]], matrix: np.ndarray) -> np.ndarray:
    """Every step over the whole in-memory matrix (t-SNE included)."""
    for step in steps:
        if step["method"] == "whitening":
            matrix = Whitening(matrix, float(step["regularization"]))(matrix)
        elif step["method"] == "tsne":
            from sklearn.manifold import TSNE

            perplexity = min(float(step["perplexity"]), max(1.0, (len(matrix) - 1) / 3))
            matrix = TSNE(
                n_components=int(step["n_components"]),
                perplexity=perplexity,
                learning_rate=float(step["learning_rate"]),
                random_state=int(step["random_state"]),
                init="pca",
            ).fit_transform(matrix)
            matrix = np.asarray(matrix, dtype=np.float32)
    return matrix


@dataclass
class TransformedSource:
    """A vector source whose chunks come out transformed (what streamed k-means fits on)."""

    source: ChunkSource
    transform: Linear

    def chunks(self, rows: int = 8192) -> Iterator[Chunk]:
        for chunk in self.source.chunks(rows):
            yield Chunk(chunk.ids, chunk.collections, self.transform(chunk.vectors))
