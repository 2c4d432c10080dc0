"""Attribute clustering: documents grouped by the values of some payload fields.

No vectors and no algorithm: a group is one combination of values (biggest group first), named by
those values. Only the keys are held in memory, one short tuple per document.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from strataflow.blobs import BlobStore
from strataflow.index.store import DocumentIndex
from strataflow.paths import value_at
from strataflow.services.clusters.artifact import ArtifactWriter
from strataflow.services.clusters.runs import source_where
from strataflow.store.tables import Collection

MISSING = "(none)"


def _value(payload: dict[str, Any], path: str) -> str:
    value = value_at(payload, path)
    if value is None:
        return MISSING
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def run(
    index: DocumentIndex,
    blobs: BlobStore,
    collections: list[Collection],
    settings: dict[str, Any],
    key: str,
    keep_alive: Callable[[], None],
) -> dict[str, Any]:
    started = time.monotonic()
    attributes = list(settings["attributes"])
    limit = settings.get("sample_size")
    ids: list[str] = []
    cols: list[str] = []
    keys: list[tuple[str, ...]] = []
    for collection in collections:
        where = source_where(collection, [], settings.get("filters"))
        for batch in index.scan(collection.collection_id, ["document_id", "payload"], where):
            for doc, payload in zip(
                batch.column("document_id").to_pylist(), batch.column("payload").to_pylist(), strict=True
            ):
                data = json.loads(payload) if payload else {}
                ids.append(doc)
                cols.append(collection.collection_id)
                keys.append(tuple(_value(data, a) for a in attributes))
            keep_alive()
            if limit is not None and len(ids) >= limit:
                break
    if limit is not None:
        ids, cols, keys = ids[:limit], cols[:limit], keys[:limit]
    if not ids:
        raise ValueError("No documents matched: nothing to group")
    order = [combo for combo, _ in Counter(keys).most_common()]
    number = {combo: i for i, combo in enumerate(order)}
    labels = np.array([number[k] for k in keys], dtype=np.int64)
    writer = ArtifactWriter()
    try:
        for start in range(0, len(ids), 8192):
            end = start + 8192
            writer.write(ids[start:end], cols[start:end], labels[start:end], None, None)
        writer.store(blobs, key)
    finally:
        writer.close()
    sizes = np.bincount(labels, minlength=len(order))
    groups = [
        {
            "cluster_id": f"cl_{i}",
            "index": i,
            "num_members": int(sizes[i]),
            "keywords": [v for v in combo if v != MISSING],
            "label": " / ".join(f"{a}={v}" for a, v in zip(attributes, combo, strict=True)),
            "attributes": dict(zip(attributes, combo, strict=True)),
            "centroid": None,
            "representatives": [],
        }
        for i, combo in enumerate(order)
    ]
    metrics = {
        "num_clusters": len(groups),
        "noise_points": 0,
        "noise_ratio": 0.0,
        "avg_cluster_size": float(sizes.mean()),
        "silhouette_score": None,
        "davies_bouldin_index": None,
        "calinski_harabasz_score": None,
        "degenerate_detail": "attribute groups have no vector space",
    }
    return {
        "num_clusters": len(groups),
        "num_points": len(ids),
        "groups": groups,
        "metrics": metrics,
        "artifact_key": key,
        "timings": {"total_compute_s": time.monotonic() - started},
        "streamed": False,
    }
