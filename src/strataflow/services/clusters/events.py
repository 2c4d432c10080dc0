"""The events a cluster run records, each in the transaction that moves the run.

`cluster.execution.started` when a job takes the run (again after a taken-over job: receivers
see a second `started` for the same `run_id`), `cluster.execution.completed` in the transaction
that makes it the cluster's current run, `cluster.execution.failed` when it fails or is canceled
(`status` says which).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from strataflow.clock import isoformat
from strataflow.services.events.outbox import emit
from strataflow.statuses import Status
from strataflow.store.tables import Cluster, ClusterRun

GROUPS_MAX = 100  # groups one completion event lists (num_clusters says how many there are)


def run_changed(session: Session, run: ClusterRun, cluster: Cluster | None = None) -> None:
    """The event for the status the run has just taken (nothing for PENDING)."""
    status = run.status
    if status is Status.PROCESSING:
        event_type = "cluster.execution.started"
    elif status is Status.COMPLETED:
        event_type = "cluster.execution.completed"
    elif status in (Status.FAILED, Status.CANCELED):
        event_type = "cluster.execution.failed"
    else:
        return
    cluster = cluster or session.get(Cluster, run.cluster_id)
    payload: dict[str, Any] = {
        "cluster_id": run.cluster_id,
        "cluster_name": cluster.cluster_name if cluster is not None else None,
        "run_id": run.run_id,
        "task_id": run.task_id,
        "status": status.value,
        "mode": run.mode,
        "algorithm": run.algorithm,
        "source_documents": run.source_documents,
        "started_at": isoformat(run.started_at),
        "completed_at": isoformat(run.completed_at),
    }
    if status is Status.COMPLETED:
        groups = list(run.groups or [])
        payload.update(
            num_clusters=run.num_clusters,
            num_points=run.num_points,
            metrics=run.metrics,
            groups=[
                {k: g.get(k) for k in ("cluster_id", "label", "num_members", "keywords")} for g in groups[:GROUPS_MAX]
            ],
            groups_truncated=len(groups) > GROUPS_MAX,
        )
    if status in (Status.FAILED, Status.CANCELED):
        payload["error"] = run.error
    emit(session, event_type, namespace_id=run.namespace_id, resource_id=run.cluster_id, payload=payload)
