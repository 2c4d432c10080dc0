"""What a finished run gives back beyond its groups: the scatter (visualization) and the export."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from strataflow.blobs import BlobStore
from strataflow.errors import BadRequestError, ConflictError
from strataflow.services.clusters.artifact import NOISE, read_batches
from strataflow.services.clusters.views import group_label
from strataflow.statuses import Status
from strataflow.store.tables import Cluster, ClusterRun

DEFAULT_MAX_POINTS = 5000
EXPORT_URL_TTL_S = 3600


def _finished(run: ClusterRun) -> str:
    if run.status != Status.COMPLETED or not run.artifact_key:
        raise ConflictError(
            f"Run '{run.run_id}' is {run.status}: only a completed run has results",
            {"run_id": run.run_id, "status": run.status},
        )
    return run.artifact_key


def visualization(
    blobs: BlobStore, cluster: Cluster, run: ClusterRun, max_points: int | None, centroids_only: bool, compact: bool
) -> dict[str, Any]:
    """Projected members (an even sample of at most max_points) and centroids of one run."""
    key = _finished(run)
    if cluster.cluster_type != "vector":
        raise BadRequestError(
            "Attribute clusters have no vector space to project; read their groups instead",
            {"cluster_type": cluster.cluster_type},
        )
    labels = {g["cluster_id"]: group_label(run, g) for g in run.groups}
    dims = int(run.settings.get("vis_n_components") or 2)
    centroids = [
        {
            "cluster_id": g["cluster_id"],
            "label": labels[g["cluster_id"]],
            "keywords": list(g.get("keywords") or []),
            "num_members": g["num_members"],
            **_xyz(g.get("coordinates") or [0.0, 0.0, 0.0], dims),
        }
        for g in run.groups
    ]
    wanted = 0 if centroids_only else min(run.num_points, max_points or DEFAULT_MAX_POINTS)
    chosen = (
        np.sort(np.random.default_rng(0).choice(run.num_points, wanted, replace=False))
        if wanted < run.num_points
        else None
    )
    columns: dict[str, list[Any]] = {
        "document_ids": [],
        "collection_ids": [],
        "cluster_ids": [],
        "x": [],
        "y": [],
        "z": [],
    }
    seen = 0
    if wanted:
        for batch in read_batches(blobs, key, ["document_id", "collection_id", "cluster_id", "x", "y", "z"]):
            read = batch.num_rows
            if chosen is not None:  # positions are over the whole file: keep those inside this batch
                lo, hi = np.searchsorted(chosen, [seen, seen + read])
                batch = batch.take(pa.array(chosen[lo:hi] - seen))
            seen += read
            rows = batch.to_pydict()
            for name, column in (
                ("document_ids", "document_id"),
                ("collection_ids", "collection_id"),
                ("cluster_ids", "cluster_id"),
                ("x", "x"),
                ("y", "y"),
                ("z", "z"),
            ):
                columns[name] += rows[column]
    body: dict[str, Any] = {
        "cluster_id": cluster.cluster_id,
        "run_id": run.run_id,
        "n_components": dims,
        "projection": "pca",
        "total_points": run.num_points,
        "returned_points": len(columns["document_ids"]),
        "centroids": centroids,
    }
    if compact:
        body["members"] = {k: v for k, v in columns.items() if k != "z" or dims == 3}
    else:
        body["points"] = [
            {
                "document_id": d,
                "collection_id": c,
                "cluster_id": g,
                "label": labels.get(g, "Noise" if g == NOISE else g),
                **_xyz([x, y, z], dims),
            }
            for d, c, g, x, y, z in zip(
                columns["document_ids"],
                columns["collection_ids"],
                columns["cluster_ids"],
                columns["x"],
                columns["y"],
                columns["z"],
                strict=True,
            )
        ]
    return body


def _xyz(values: list[Any], dims: int) -> dict[str, Any]:
    out = {"x": values[0], "y": values[1] if len(values) > 1 else 0.0}
    if dims == 3:
        out["z"] = values[2] if len(values) > 2 else 0.0
    return out


def export_parquet(blobs: BlobStore, run: ClusterRun) -> dict[str, Any]:
    key = _finished(run)
    info = blobs.head(key)
    return {
        "cluster_id": run.cluster_id,
        "run_id": run.run_id,
        "format": "parquet",
        "download_url": blobs.presigned_get_url(key, EXPORT_URL_TTL_S),
        "expires_in_seconds": EXPORT_URL_TTL_S,
        "row_count": run.num_points,
        "size_bytes": info.size if info else None,
        "columns": [
            "document_id",
            "collection_id",
            "cluster_id",
            "cluster_index",
            "distance_to_centroid",
            "x",
            "y",
            "z",
        ],
    }


def export_csv(blobs: BlobStore, run: ClusterRun, cluster_label: str | None) -> Iterator[bytes]:
    """The run as CSV with each row's current label, streamed batch by batch."""
    key = _finished(run)
    labels = {g["cluster_id"]: group_label(run, g) for g in run.groups}
    only: str | None = None
    if cluster_label is not None:
        only = (
            cluster_label
            if cluster_label in labels or cluster_label == NOISE
            else next((cid for cid, label in labels.items() if label == cluster_label), None)
        )
        if only is None:
            raise BadRequestError(
                f"Run '{run.run_id}' has no group '{cluster_label}'",
                {"cluster_label": cluster_label, "groups": sorted(labels)},
            )

    def rows() -> Iterator[bytes]:
        header = True
        for batch in read_batches(blobs, key):
            table = pa.Table.from_batches([batch])
            if only is not None:
                table = table.filter(pc.equal(table.column("cluster_id"), only))
            names = table.column("cluster_id").to_pylist()
            table = table.append_column("cluster_label", pa.array([labels.get(n, "Noise") for n in names], pa.string()))
            out = io.BytesIO()
            pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=header))
            header = False
            yield out.getvalue()

    return rows()
