"""Runs of a cluster: start one (a task the engine executes), read, list, cancel, label, name."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.errors import BadRequestError, ConflictError, not_found
from strataflow.ids import new_id
from strataflow.index.store import DocumentIndex
from strataflow.schemas.clusters import ExecuteClusterRequest, ListClusterExecutionsRequest
from strataflow.services.clusters.composite import count_centroids, source_runs
from strataflow.services.clusters.crud import ACTIVE_RUN, get_cluster
from strataflow.services.clusters.events import run_changed
from strataflow.services.clusters.preprocessing import check_size
from strataflow.services.clusters.rules import IN_MEMORY_BYTES, check_k_fits, points_to_cluster, streams
from strataflow.services.documents.crud import where_of
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.services.tenancy.tasks import create_task
from strataflow.statuses import TERMINAL, Status, TaskType
from strataflow.store.filters import FieldMap, compile_filters
from strataflow.store.pagination import Page, PageRequest, paginate
from strataflow.store.tables import Cluster, ClusterRun, Collection, Task
from strataflow.transitions import create, transition

RUN_FIELDS = FieldMap(
    columns={
        "run_id": ClusterRun.run_id,
        "status": ClusterRun.status,
        "run_name": ClusterRun.run_name,
        "created_at": ClusterRun.created_at,
        "num_clusters": ClusterRun.num_clusters,
        "algorithm": ClusterRun.algorithm,
    }
)


def source_where(collection: Collection, columns: list[str], filters: dict[str, Any] | None) -> str | None:
    """Documents of one collection a run reads: those holding every feature, passing the filters."""
    clauses = [f"{column} IS NOT NULL" for column in columns]
    user = where_of(collection, filters)
    if user:
        clauses.append(f"({user})")
    return " AND ".join(clauses) or None


def count_sources(session: Session, index: DocumentIndex, cluster: Cluster, filters: dict[str, Any] | None) -> int:
    total = 0
    for collection_id in cluster.collection_ids:
        collection = session.get(Collection, collection_id)
        if collection is None:
            raise BadRequestError(
                f"Collection '{collection_id}' of cluster '{cluster.cluster_name}' no longer exists",
                {"collection_id": collection_id},
            )
        columns = list(cluster.config.get("columns", {}).get(collection_id, {}).values())
        total += index.count(collection_id, source_where(collection, columns, filters))
    return total


def execute_cluster(
    session: Session,
    index: DocumentIndex,
    scope: NamespaceScope,
    identifier: str,
    request: ExecuteClusterRequest,
    trigger: str = "api",
) -> tuple[ClusterRun, Task]:
    """Check the run can start (no other active, sizes fit), then queue it. Nothing runs here."""
    cluster = get_cluster(session, scope, identifier, for_update=True)
    active = session.scalar(
        select(ClusterRun.run_id).where(ClusterRun.cluster_id == cluster.cluster_id, ClusterRun.status.in_(ACTIVE_RUN))
    )
    if active is not None:
        raise ConflictError(
            f"Cluster '{cluster.cluster_id}' is already running ({active}); wait for it or cancel it",
            {"run_id": active, "cluster_id": cluster.cluster_id},
        )
    mode = request.mode
    if "mode" not in request.model_fields_set and cluster.config.get("source_cluster_ids"):
        mode = "composite"  # a composite cluster runs composite unless told otherwise
    assign_from = _assign_source(session, cluster, request) if mode == "assign" else None
    composite_runs = source_runs(session, cluster, request.source_execution_ids) if mode == "composite" else None
    config = cluster.config
    filters = request.filters if request.filters is not None else cluster.filters
    sample_size = request.sample_size if request.sample_size is not None else config.get("sample_size")
    available = count_sources(session, index, cluster, filters)
    algorithm = str(config["algorithm"])
    if algorithm == "attribute_based":
        points = available if sample_size is None else min(available, sample_size)
        if points < 1:
            raise BadRequestError("No documents to cluster (check the filters)", {"documents": 0})
    elif composite_runs is not None:  # the points are the source runs' centroids
        points = count_centroids(session, composite_runs)
        check_k_fits(algorithm, config.get("algorithm_params", {}), points)
    elif assign_from is not None:  # no fit: every point is compared with the centroids, chunk by chunk
        points = available if sample_size is None else min(available, sample_size)
        if points < 1:
            raise BadRequestError("No documents to assign (check the filters)", {"documents": 0})
    else:
        points = points_to_cluster(algorithm, available, sample_size)
        check_k_fits(algorithm, config.get("algorithm_params", {}), points)
        width = sum(int(d) for d in (config.get("dimensions") or {}).values())
        streamed = streams(algorithm, points, width)
        check_size(list(config.get("preprocessing_steps") or []), points, streamed)
        if streamed and (config.get("face_cluster_merge") or {}).get("enabled"):
            raise BadRequestError(
                f"face_cluster_merge runs in memory, on at most {IN_MEMORY_BYTES // 2**20:,} MiB of vectors "
                f"(this run would stream {points:,} x {width}); lower sample_size",
                {"points": points, "dimensions": width},
            )
        if streamed and config.get("hierarchical"):
            raise BadRequestError(
                f"Hierarchical sub-clustering runs in memory, on at most {IN_MEMORY_BYTES // 2**20:,} MiB of "
                f"vectors (this run would stream {points:,} x {width}); lower sample_size",
                {"points": points, "dimensions": width},
            )
    settings = {
        **config,
        "filters": filters,
        "sample_size": sample_size,
        "points": points,
        "available": available,
        "vis_n_components": request.vis_n_components or config.get("vis_n_components", 2),
        "triggered_by": trigger,
    }
    if composite_runs is not None:
        settings.update({"source_execution_ids": composite_runs, "enrich_source": False})
    if assign_from is not None:
        settings.update({"assign_from_run_id": assign_from, "assignment_threshold": request.assignment_threshold})
    if request.layout_stability is not None:  # for this run only
        settings["layout_stability"] = request.layout_stability
    if request.llm_labeling is not None:
        settings["llm_labeling"] = request.llm_labeling.model_dump()
    run_id = new_id("cluster_run")
    task = create_task(
        session,
        scope.org_id,
        TaskType.ENGINE_CLUSTER_BUILD,
        namespace_id=scope.namespace_id,
        inputs=[
            {
                "cluster_id": cluster.cluster_id,
                "run_id": run_id,
                "collection_ids": list(cluster.collection_ids),
                "config": {
                    "algorithm": algorithm,
                    **config.get("algorithm_params", {}),
                    **(
                        {"k": config["algorithm_params"]["n_clusters"]}
                        if "n_clusters" in config.get("algorithm_params", {})
                        else {}
                    ),
                },
            }
        ],
        additional_data={"cluster_id": cluster.cluster_id, "run_id": run_id, "triggered_by": trigger},
    )
    now = utcnow()
    run = ClusterRun(
        run_id=run_id,
        cluster_id=cluster.cluster_id,
        namespace_id=scope.namespace_id,
        task_id=task.task_id,
        mode=mode,
        settings=settings,
        algorithm=algorithm,
        source_documents=available,
        created_at=now,
        updated_at=now,
    )
    create(session, run, Status.PENDING, f"queued as task {task.task_id}")
    cluster.last_run_id, cluster.last_task_id, cluster.last_executed_at = run_id, task.task_id, now
    session.commit()
    return run, task


def _assign_source(session: Session, cluster: Cluster, request: ExecuteClusterRequest) -> str:
    """Mode 'assign' places documents on the current run's centroids: there must be one."""
    if cluster.cluster_type != "vector":
        raise BadRequestError("Mode 'assign' needs a vector cluster (its centroids)", {"mode": "assign"})
    current = session.get(ClusterRun, cluster.current_run_id) if cluster.current_run_id else None
    if current is None or not any(g.get("centroid") for g in current.groups):
        raise BadRequestError(
            "Mode 'assign' needs a completed run with centroids; execute the cluster in mode 'full' first",
            {"mode": "assign", "current_run_id": cluster.current_run_id},
        )
    return current.run_id


def get_run(session: Session, cluster: Cluster, run_id: str) -> ClusterRun:
    run = session.scalar(
        select(ClusterRun).where(ClusterRun.cluster_id == cluster.cluster_id, ClusterRun.run_id == run_id)
    )
    if run is None:
        raise not_found("Cluster run", run_id)
    return run


def latest_run(session: Session, cluster: Cluster) -> ClusterRun:
    """The current results (last completed run), else the newest run; none yet is a 404."""
    run_id = cluster.current_run_id or cluster.last_run_id
    if run_id is None:
        raise not_found("Execution of cluster", cluster.cluster_id)
    return get_run(session, cluster, run_id)


def list_runs(
    session: Session, cluster: Cluster, request: ListClusterExecutionsRequest, page: PageRequest
) -> tuple[Page, int, dict[str, int]]:
    query = select(ClusterRun).where(ClusterRun.cluster_id == cluster.cluster_id)
    clause = compile_filters(request.filters, RUN_FIELDS)
    if clause is not None:
        query = query.where(clause)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    by_status: dict[str, int] = dict(
        session.execute(
            select(ClusterRun.status, func.count())
            .where(ClusterRun.cluster_id == cluster.cluster_id)
            .group_by(ClusterRun.status)
        ).all()
    )
    query = query.order_by(ClusterRun.created_at.desc(), ClusterRun.run_id)
    return paginate(session, query, page), total, by_status


def cancel_run(session: Session, cluster: Cluster, run_id: str) -> ClusterRun:
    """Stop a queued or running run; the previous results stay current. A finished run is a 409."""
    run = session.scalar(
        select(ClusterRun)
        .where(ClusterRun.cluster_id == cluster.cluster_id, ClusterRun.run_id == run_id)
        .with_for_update()
    )
    if run is None:
        raise not_found("Cluster run", run_id)
    if run.status in TERMINAL:
        raise ConflictError(f"Run '{run_id}' already finished ({run.status})", {"status": run.status})
    mark_canceled(session, run, "canceled through the API")
    task = session.get(Task, run.task_id) if run.task_id else None
    if task is not None and task.status not in TERMINAL:
        transition(session, task, Status.CANCELED, f"cluster run {run_id} canceled")
    session.commit()
    return run


def mark_canceled(session: Session, run: ClusterRun, reason: str) -> None:
    transition(session, run, Status.CANCELED, reason, completed_at=utcnow(), error="Canceled")
    run_changed(session, run)


def cancel_from_task(session: Session, task: Task) -> None:
    """Kill hook: killing an engine_cluster_build task cancels its run."""
    run_id = (task.inputs or [{}])[0].get("run_id")
    run = session.get(ClusterRun, run_id) if run_id else None
    if run is not None and run.status not in TERMINAL:
        mark_canceled(session, run, f"task {task.task_id} was killed")


def patch_labels(session: Session, cluster: Cluster, run_id: str, labels: dict[str, str]) -> ClusterRun:
    run = get_run(session, cluster, run_id)
    known = {g["cluster_id"] for g in run.groups}
    unknown = sorted(set(labels) - known)
    if unknown:
        raise BadRequestError(
            f"Run '{run_id}' has no group(s) {', '.join(unknown)}", {"unknown": unknown, "groups": sorted(known)}
        )
    if any(not label.strip() or len(label) > 255 for label in labels.values()):
        raise BadRequestError("Labels must be 1 to 255 characters")
    run.label_overrides = {**(run.label_overrides or {}), **labels}
    session.commit()
    return run


def patch_run_name(session: Session, cluster: Cluster, run_id: str, name: str) -> ClusterRun:
    run = get_run(session, cluster, run_id)
    run.run_name = name
    session.commit()
    return run
