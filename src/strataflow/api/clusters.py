"""Clusters: definitions, their runs (executions), groups, the scatter and the export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from strataflow.api.deps import DbDep, PageDep, ReadDbDep, RuntimeDep, ScopeDep, paged
from strataflow.engine.clusters import enrichment, output_documents
from strataflow.errors import BadRequestError
from strataflow.schemas.clusters import (
    CreateClusterRequest,
    ExecuteClusterRequest,
    ListClusterExecutionsRequest,
    ListClustersRequest,
    PatchClusterRequest,
    PatchLabelsRequest,
    PatchRunNameRequest,
)
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.services.clusters import crud, outputs, runs
from strataflow.services.clusters.output_collection import output_collection_ids
from strataflow.services.clusters.views import cluster_view, group_label, groups_view, run_view
from strataflow.services.tenancy.tasks import task_payload
from strataflow.store.tables import Cluster, ClusterRun, Collection

router = APIRouter(prefix="/v1/clusters", tags=["Clusters"], responses=ERROR_RESPONSES)


def _view(session: Session, cluster: Cluster) -> dict[str, Any]:
    last = session.get(ClusterRun, cluster.last_run_id) if cluster.last_run_id else None
    current = session.get(ClusterRun, cluster.current_run_id) if cluster.current_run_id else None
    view = cluster_view(cluster, last, current)
    if view["output_collection_ids"]:
        rows = [session.get(Collection, cid) for cid in view["output_collection_ids"]]
        view["output_collection_names"] = [r.collection_name if r else None for r in rows]
    return view


@router.post("")
def create_cluster(
    request: CreateClusterRequest, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    return _view(session, crud.create_cluster(session, scope, request, runtime.index))


@router.post("/list")
def list_clusters(
    scope: ScopeDep, session: ReadDbDep, page: PageDep, request: ListClustersRequest | None = None
) -> dict[str, Any]:
    body = request or ListClustersRequest()
    result, total = crud.list_clusters(session, scope, body, paged(page, body))
    views = [_view(session, c) for c in result.rows]
    by_status: dict[str, int] = {}
    for view in views:
        by_status[view["status"]] = by_status.get(view["status"], 0) + 1
    return {
        "results": views,
        "total_count": total,
        "total": total,
        "pagination": {**result.pagination, "total": total},
        "stats": {"total_clusters": total, "clusters_by_status": by_status},
    }


@router.get("")
def list_clusters_get(scope: ScopeDep, session: ReadDbDep, page: PageDep) -> dict[str, Any]:
    return list_clusters(scope, session, page, None)


@router.get("/{cluster_identifier}")
def get_cluster(cluster_identifier: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return _view(session, crud.get_cluster(session, scope, cluster_identifier))


@router.patch("/{cluster_identifier}")
def patch_cluster(
    cluster_identifier: str, request: PatchClusterRequest, scope: ScopeDep, session: DbDep
) -> dict[str, Any]:
    return _view(session, crud.patch_cluster(session, scope, cluster_identifier, request))


@router.delete("/{cluster_id}")
def delete_cluster(cluster_id: str, scope: ScopeDep, session: DbDep, runtime: RuntimeDep) -> dict[str, Any]:
    deleted = crud.delete_cluster(
        session,
        runtime.blobs,
        scope,
        cluster_id,
        before_delete=lambda cluster, run: enrichment.remove_current(runtime.index, runtime.blobs, cluster, run),
        index=runtime.index,
    )
    return {"success": True, "message": f"Cluster {deleted} deleted", "cluster_id": deleted}


@router.post("/{cluster_id}/execute")
def execute_cluster(
    cluster_id: str, scope: ScopeDep, session: DbDep, runtime: RuntimeDep, request: ExecuteClusterRequest | None = None
) -> dict[str, Any]:
    """Queue a run; the engine executes it in the background (poll the task or the execution)."""
    run, task = runs.execute_cluster(session, runtime.index, scope, cluster_id, request or ExecuteClusterRequest())
    return {**task_payload(task), "run_id": run.run_id, "cluster_id": run.cluster_id}


@router.get("/{cluster_id}/groups")
def cluster_groups(cluster_id: str, scope: ScopeDep, session: ReadDbDep, run_id: str | None = None) -> dict[str, Any]:
    cluster = crud.get_cluster(session, scope, cluster_id)
    run = runs.get_run(session, cluster, run_id) if run_id else _current(session, cluster)
    return groups_view(cluster, run)


def _current(session: Session, cluster: Cluster) -> ClusterRun:
    if cluster.current_run_id is None:
        raise BadRequestError(
            f"Cluster '{cluster.cluster_id}' has no completed run yet; execute it first",
            {"cluster_id": cluster.cluster_id, "last_run_id": cluster.last_run_id},
        )
    return runs.get_run(session, cluster, cluster.current_run_id)


@router.get("/{cluster_id}/visualization")
def cluster_visualization(
    cluster_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    max_points: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    centroids_only: bool = False,
    compact: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    cluster = crud.get_cluster(session, scope, cluster_id)
    run = runs.get_run(session, cluster, run_id) if run_id else _current(session, cluster)
    return outputs.visualization(runtime.blobs, cluster, run, max_points, centroids_only, compact)


@router.get("/{cluster_id}/executions")
def latest_execution(
    cluster_id: str, scope: ScopeDep, session: ReadDbDep, include_vectors: bool = False
) -> dict[str, Any]:
    cluster = crud.get_cluster(session, scope, cluster_id)
    return run_view(runs.latest_run(session, cluster), include_vectors)


@router.post("/{cluster_id}/executions/list")
def list_executions(
    cluster_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    page: PageDep,
    request: ListClusterExecutionsRequest | None = None,
) -> dict[str, Any]:
    cluster = crud.get_cluster(session, scope, cluster_id)
    result, total, by_status = runs.list_runs(session, cluster, request or ListClusterExecutionsRequest(), page)
    return {
        "results": [run_view(r) for r in result.rows],
        "total_count": total,
        "pagination": {**result.pagination, "total": total},
        "stats": {"total_executions": total, "executions_by_status": by_status},
    }


@router.get("/{cluster_id}/executions/{run_id}")
def get_execution(
    cluster_id: str, run_id: str, scope: ScopeDep, session: ReadDbDep, include_vectors: bool = False
) -> dict[str, Any]:
    cluster = crud.get_cluster(session, scope, cluster_id)
    return run_view(runs.get_run(session, cluster, run_id), include_vectors)


@router.post("/{cluster_id}/executions/{run_id}/cancel")
def cancel_execution(cluster_id: str, run_id: str, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    cluster = crud.get_cluster(session, scope, cluster_id)
    run = runs.cancel_run(session, cluster, run_id)
    return {
        "success": True,
        "cluster_id": cluster.cluster_id,
        "run_id": run.run_id,
        "status": run.status.lower(),
        "task_id": run.task_id,
    }


@router.get("/{cluster_id}/executions/{run_id}/export", response_model=None)
def export_execution(
    cluster_id: str,
    run_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    format: str = "parquet",
    cluster_label: str | None = None,
) -> Any:
    cluster = crud.get_cluster(session, scope, cluster_id)
    run = runs.get_run(session, cluster, run_id)
    if format == "parquet":
        return outputs.export_parquet(runtime.blobs, run)
    if format == "csv":
        body = outputs.export_csv(runtime.blobs, run, cluster_label)
        return StreamingResponse(
            body, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{run.run_id}.csv"'}
        )
    raise BadRequestError(f"Unknown export format '{format}'; use parquet or csv", {"format": format})


@router.patch("/{cluster_id}/executions/{run_id}/labels")
def patch_labels(
    cluster_id: str, run_id: str, request: PatchLabelsRequest, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Edited labels win over computed ones; on the enriched documents too, when this run enriched them."""
    cluster = crud.get_cluster(session, scope, cluster_id)
    run = runs.patch_labels(session, cluster, run_id, request.labels)
    spec = enrichment.current_spec(cluster, run)
    written = enrichment.relabel(runtime.index, runtime.blobs, spec, set(request.labels)) if spec else 0
    if run.run_id == cluster.current_run_id and run.artifact_key:
        labels = {g["cluster_id"]: group_label(run, g) for g in run.groups}
        uris = list(run.settings.get("feature_uris") or [])
        dimensions = {u: int(d) for u, d in (run.settings.get("dimensions") or {}).items()}
        for collection_id in output_collection_ids(cluster.config):
            output = session.get(Collection, collection_id)
            if output is None:
                continue
            output_documents.write(
                runtime.index,
                runtime.blobs,
                output,
                run.run_id,
                run.artifact_key,
                run.groups,
                labels,
                uris,
                lambda: None,
                only=set(request.labels),
                dimensions=dimensions,
            )
    return {
        "cluster_id": cluster.cluster_id,
        "run_id": run.run_id,
        "label_overrides": dict(run.label_overrides),
        "documents_relabeled": written,
    }


@router.patch("/{cluster_id}/executions/{run_id}/name")
def patch_run_name(
    cluster_id: str, run_id: str, request: PatchRunNameRequest, scope: ScopeDep, session: DbDep
) -> dict[str, Any]:
    cluster = crud.get_cluster(session, scope, cluster_id)
    run = runs.patch_run_name(session, cluster, run_id, request.run_name)
    return {"cluster_id": cluster.cluster_id, "run_id": run.run_id, "run_name": run.run_name}
