"""The last pass of a run: each point's group, distance and coordinates, written as they come.

Per group it keeps only counts, cosine sums and the closest few members (representatives, whose
texts give the keywords), so the pass holds one chunk at a time.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strataflow.services.clusters.artifact import ArtifactWriter

REPRESENTATIVES = 25


@dataclass
class GroupStats:
    members: int = 0
    cosine_sum: float = 0.0
    cosine_min: float = 1.0
    closest: list[tuple[float, str, str]] = field(default_factory=list)  # max-heap of (-distance, id, collection)


class Assigner:
    def __init__(
        self, centers: np.ndarray, projection: Any | None, writer: ArtifactWriter, names: list[str] | None = None
    ) -> None:
        self.names = names  # group names when not cl_<index> (hierarchical leaves)
        self.centers = centers.astype(np.float32)
        self.center_norms = np.linalg.norm(self.centers, axis=1)
        self.projection = projection
        self.writer = writer
        self.stats = [GroupStats() for _ in range(len(centers))]
        self.noise = 0

    def add(self, ids: list[str], collections: list[str], vectors: np.ndarray, labels: np.ndarray) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        distances = np.full(len(ids), np.nan, dtype=np.float32)
        cosines = np.full(len(ids), np.nan, dtype=np.float32)
        grouped = labels >= 0
        if grouped.any():
            centers = self.centers[labels[grouped]]
            points = vectors[grouped]
            distances[grouped] = np.linalg.norm(points - centers, axis=1)
            norms = np.linalg.norm(points, axis=1) * self.center_norms[labels[grouped]]
            cosines[grouped] = (points * centers).sum(axis=1) / np.where(norms == 0, 1.0, norms)
        coords = self.projection.transform(vectors) if self.projection is not None else None
        self.writer.write(ids, collections, labels, distances, coords, self.names)
        self.noise += int((~grouped).sum())
        rows = np.flatnonzero(grouped)
        if not len(rows):
            return
        # Per group present in the chunk: counts and cosines in one go, and only its closest few
        # rows offered to the group's heap (a Python step per representative, not per point).
        order = rows[np.lexsort((distances[rows], labels[rows]))]
        present, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        for group, start, count in zip(present.tolist(), starts.tolist(), counts.tolist(), strict=True):
            members = order[start : start + count]
            stats = self.stats[group]
            stats.members += count
            stats.cosine_sum += float(cosines[members].sum(dtype=np.float64))
            stats.cosine_min = min(stats.cosine_min, float(cosines[members].min()))
            for row in members[:REPRESENTATIVES].tolist():
                item = (-float(distances[row]), ids[row], collections[row])
                if len(stats.closest) < REPRESENTATIVES:
                    heapq.heappush(stats.closest, item)
                elif item > stats.closest[0]:
                    heapq.heapreplace(stats.closest, item)
                else:
                    break  # sorted by distance: the rest are farther still

    def sizes(self) -> np.ndarray:
        return np.array([s.members for s in self.stats], dtype=np.int64)

    def groups(self, include_centroids: bool = True) -> list[dict[str, Any]]:
        """The run's groups, biggest first kept in model order (cl_i is the model's group i)."""
        out = []
        for index, stats in enumerate(self.stats):
            if stats.members == 0:
                continue
            closest = sorted(stats.closest, reverse=True)
            coords = (
                self.projection.transform(self.centers[index : index + 1])[0].tolist()
                if self.projection is not None
                else None
            )
            out.append(
                {
                    "cluster_id": self.names[index] if self.names else f"cl_{index}",
                    "index": index,
                    "num_members": stats.members,
                    "mean_cosine_similarity": stats.cosine_sum / stats.members,
                    "min_cosine_similarity": stats.cosine_min,
                    "centroid": self.centers[index].tolist() if include_centroids else None,
                    "coordinates": coords,
                    "representatives": [[doc, col] for _, doc, col in closest],
                }
            )
        return out
