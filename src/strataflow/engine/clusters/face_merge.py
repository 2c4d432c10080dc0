"""`face_cluster_merge`: merge groups that are one identity split in two (FaceClusterMergeConfig).

Density clustering of face embeddings tends to split one person across poses and lighting. After
the fit and before centroids are computed, two groups merge when their centroids' cosine reaches
`centroid_cosine_threshold` AND one spatial signal agrees:

- boxes: over the frames both groups appear in (a frame is the document's source object and its
  `frame_field` value), the mean of the best box IoU between the two groups in that frame reaches
  `bbox_iou_threshold` (boxes are `[x1, y1, x2, y2]`, or `{x, y, width, height}`);
- scenes: the Jaccard similarity of the two groups' `scene_field` values reaches
  `scene_jaccard_threshold`.

Agglomerative and greedy: the most similar qualifying pair merges first, the merged group's
centroid, frames and scenes are recomputed, and the search repeats until no pair qualifies. Noise
stays noise. No model is involved: the signals are the documents' own fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Box = tuple[float, float, float, float]
FrameKey = tuple[str, str]


def _box(value: Any) -> Box | None:
    try:
        if isinstance(value, dict):
            x, y = float(value["x"]), float(value["y"])
            w = float(value["width"] if "width" in value else value["w"])
            h = float(value["height"] if "height" in value else value["h"])
            return (x, y, x + w, y + h)
        if isinstance(value, (list, tuple)) and len(value) == 4:
            x1, y1, x2, y2 = (float(v) for v in value)
            return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None
    except (KeyError, TypeError, ValueError):
        return None
    return None


def iou(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Evidence:
    """What a group's members say about where they are: boxes per frame, and scenes."""

    frames: dict[FrameKey, list[Box]] = field(default_factory=dict)
    scenes: set[str] = field(default_factory=set)

    def absorb(self, other: Evidence) -> None:
        for frame, boxes in other.frames.items():
            self.frames.setdefault(frame, []).extend(boxes)
        self.scenes |= other.scenes


def evidence_of(
    labels: np.ndarray, k: int, fields: list[tuple[str, dict[str, Any]]], config: dict[str, Any]
) -> list[Evidence]:
    """Per group, from each member's (source object id, payload)."""
    groups = [Evidence() for _ in range(k)]
    bbox, frame, scene = config["bbox_field"], config["frame_field"], config["scene_field"]
    for label, (source, payload) in zip(labels.tolist(), fields, strict=True):
        if label < 0:
            continue
        group = groups[label]
        box = _box(payload.get(bbox))
        if box is not None and payload.get(frame) is not None:
            group.frames.setdefault((source, str(payload[frame])), []).append(box)
        if payload.get(scene) is not None:
            group.scenes.add(str(payload[scene]))
    return groups


def _signals(a: Evidence, b: Evidence) -> tuple[float | None, float | None]:
    shared = a.frames.keys() & b.frames.keys()
    overlap = (
        float(np.mean([max(iou(x, y) for x in a.frames[f] for y in b.frames[f]) for f in shared])) if shared else None
    )
    union = a.scenes | b.scenes
    jaccard = len(a.scenes & b.scenes) / len(union) if a.scenes and b.scenes else None
    return overlap, jaccard


def merge(
    matrix: np.ndarray, labels: np.ndarray, k: int, evidence: list[Evidence], config: dict[str, Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Labels after merging (renumbered by the caller), and what was merged and why."""
    threshold = float(config["centroid_cosine_threshold"])
    box_threshold, scene_threshold = float(config["bbox_iou_threshold"]), float(config["scene_jaccard_threshold"])
    sums = np.zeros((k, matrix.shape[1]), dtype=np.float64)
    for group in range(k):
        sums[group] = matrix[labels == group].sum(axis=0, dtype=np.float64)

    def unit(rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12))

    similarity = unit(sums) @ unit(sums).T
    np.fill_diagonal(similarity, -np.inf)
    target = np.arange(k)  # each original group's group after merging
    failed: set[tuple[int, int]] = set()
    merges: list[dict[str, Any]] = []
    while True:
        pairs = np.argwhere(np.triu(similarity >= threshold, 1))
        if not len(pairs):
            break
        pairs = pairs[np.argsort(-similarity[pairs[:, 0], pairs[:, 1]], kind="stable")]
        chosen = None
        for a, b in pairs.tolist():
            if (a, b) in failed:
                continue
            overlap, jaccard = _signals(evidence[a], evidence[b])
            if (overlap is not None and overlap >= box_threshold) or (
                jaccard is not None and jaccard >= scene_threshold
            ):
                chosen = (a, b, overlap, jaccard)
                break
            failed.add((a, b))
        if chosen is None:
            break
        a, b, overlap, jaccard = chosen
        merges.append(
            {
                "kept": int(a),
                "merged": int(b),
                "centroid_cosine": float(similarity[a, b]),
                "bbox_iou": overlap,
                "scene_jaccard": jaccard,
            }
        )
        sums[a] += sums[b]
        evidence[a].absorb(evidence[b])
        target[target == b] = a
        similarity[b, :] = similarity[:, b] = -np.inf
        row = unit(sums) @ unit(sums[a])
        row[target != np.arange(k)] = -np.inf  # merged-away groups
        row[a] = -np.inf
        similarity[a, :] = similarity[:, a] = row
        failed = {p for p in failed if a not in p}
    merged = np.where(labels >= 0, target[np.maximum(labels, 0)], -1)
    report = {
        "groups_before": k,
        "groups_after": len(np.unique(target)),
        "merges": merges[:100],
        "merge_count": len(merges),
    }
    return merged, report
