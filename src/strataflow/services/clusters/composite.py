"""Composite clusters: groups of the centroids of earlier runs (mode 'composite', `source_cluster_ids`).

A composite cluster names vector clusters with the same features (`source_cluster_ids`); executing
it without a mode, or with mode 'composite', groups the centroids of the newest completed run of
each source cluster, one run per partition (a partition is a run's filters). `source_execution_ids`
names the runs instead (at least two, completed, with centroids, of vector clusters of this
namespace with this cluster's dimensions). Nothing is enriched: the points are centroids, not
documents; each meta-cluster lists the source centroids it holds (`composite_mapping`).
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.tables import Cluster, ClusterRun


def check_sources(session: Session, scope: NamespaceScope, ids: list[str], feature_uris: list[str]) -> list[Cluster]:
    """The source clusters: vector clusters of this namespace over the same features."""
    found = []
    for identifier in dict.fromkeys(ids):
        column = Cluster.cluster_id if identifier.startswith("clust_") else Cluster.cluster_name
        row = session.scalar(select(Cluster).where(Cluster.namespace_id == scope.namespace_id, column == identifier))
        if row is None:
            raise BadRequestError(f"Source cluster '{identifier}' does not exist in this namespace", {"id": identifier})
        if row.cluster_type != "vector" or list(row.config.get("feature_uris") or []) != list(feature_uris):
            raise BadRequestError(
                f"Source cluster '{identifier}' must be a vector cluster over the same feature_uris",
                {"source_feature_uris": row.config.get("feature_uris"), "feature_uris": feature_uris},
            )
        found.append(row)
    return found


def _usable(run: ClusterRun | None) -> bool:
    return run is not None and run.status == Status.COMPLETED and any(g.get("centroid") for g in run.groups)


def source_runs(session: Session, cluster: Cluster, execution_ids: list[str] | None) -> list[str]:
    """The runs whose centroids a composite run groups, checked."""
    width = sum(int(d) for d in (cluster.config.get("dimensions") or {}).values())
    if execution_ids:
        if len(set(execution_ids)) < 2:
            raise BadRequestError(
                "Mode 'composite' needs at least 2 source_execution_ids", {"source_execution_ids": execution_ids}
            )
        runs = []
        for run_id in dict.fromkeys(execution_ids):
            run = session.scalar(
                select(ClusterRun).where(ClusterRun.run_id == run_id, ClusterRun.namespace_id == cluster.namespace_id)
            )
            if run is None or not _usable(run):
                raise BadRequestError(
                    f"Source execution '{run_id}' is not a completed run with centroids in this namespace",
                    {"run_id": run_id},
                )
            dims = {len(g["centroid"]) for g in run.groups if g.get("centroid")}
            if dims != {width}:
                raise BadRequestError(
                    f"The centroids of '{run_id}' do not have this cluster's {width} dimensions", {"run_id": run_id}
                )
            runs.append(run.run_id)
        return runs
    sources = list(cluster.config.get("source_cluster_ids") or [])
    if not sources:
        raise BadRequestError(
            "Mode 'composite' needs source_execution_ids, or a cluster created with source_cluster_ids",
            {"mode": "composite"},
        )
    chosen: list[str] = []
    for source_id in sources:
        newest: dict[str, str] = {}  # partition (the run's filters) -> newest usable run
        rows = session.scalars(
            select(ClusterRun).where(ClusterRun.cluster_id == source_id).order_by(ClusterRun.created_at.desc())
        )
        for run in rows:
            if _usable(run):
                newest.setdefault(json.dumps(run.settings.get("filters"), sort_keys=True), run.run_id)
        chosen += newest.values()
    if not chosen:
        raise BadRequestError(
            "None of the source clusters has a completed run with centroids; execute them first",
            {"source_cluster_ids": sources},
        )
    return chosen


def count_centroids(session: Session, run_ids: list[str]) -> int:
    return sum(
        sum(1 for g in run.groups if g.get("centroid"))
        for run in session.scalars(select(ClusterRun).where(ClusterRun.run_id.in_(run_ids)))
    )
