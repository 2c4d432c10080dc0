"""Auto-execution of clusters after batches: the collections' `cluster_applications`.

A collection lists the clusters to re-run when a batch finishes writing it (ClusterApplicationConfig:
`cluster_id`, `auto_execute_on_batch`, `min_document_threshold`, `cooldown_seconds`). A cluster
created with `auto_execute_on_batch` adds itself to each of its input collections' lists, and
removes itself when deleted.

Which batches a cluster has answered is recorded on the cluster (`config.auto_execute.handled_through`,
the completion time of the newest batch it answered), in the same transaction that queues its run:
so a batch starts at most one run, however many processes watch. A batch that finishes while the
cluster runs, or inside its cooldown, is answered by one run after that (batches coalesce).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.clock import as_utc, utcnow
from strataflow.errors import BadRequestError, ConflictError, StrataflowError
from strataflow.index.store import DocumentIndex
from strataflow.schemas.clusters import ExecuteClusterRequest
from strataflow.services.clusters.applications import DEFAULT_COOLDOWN_S, application_entry, check_auto_settings
from strataflow.services.clusters.crud import ACTIVE_RUN, get_cluster
from strataflow.services.clusters.runs import count_sources, execute_cluster
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.tables import Batch, Cluster, ClusterRun, Collection, Namespace

log = logging.getLogger("strataflow.clusters.auto")

FINISHED_BATCH = (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS)


def check_cluster_applications(session: Session, scope: NamespaceScope, collection: Collection) -> None:
    """A collection's cluster_applications: each names a cluster here that reads this collection.

    Stored with cluster ids (a name given is resolved) and the contract's defaults filled in.
    """
    if collection.cluster_applications is None:
        return
    checked = []
    for raw in collection.cluster_applications:
        if not isinstance(raw, dict) or not raw.get("cluster_id"):
            raise BadRequestError("Each cluster application needs a cluster_id", {"application": raw})
        cluster = get_cluster(session, scope, str(raw["cluster_id"]))
        if collection.collection_id not in cluster.collection_ids:
            raise BadRequestError(
                f"Cluster '{cluster.cluster_name}' does not read collection '{collection.collection_name}'",
                {"cluster_id": cluster.cluster_id, "cluster_collections": list(cluster.collection_ids)},
            )
        min_documents, cooldown = raw.get("min_document_threshold"), raw.get("cooldown_seconds")
        check_auto_settings(min_documents, cooldown)
        entry = {
            **application_entry(cluster.cluster_id, min_documents, cooldown),
            "auto_execute_on_batch": bool(raw.get("auto_execute_on_batch", True)),
        }
        for key in ("execution_phase", "priority"):
            if raw.get(key) is not None:
                entry[key] = raw[key]
        checked.append(entry)
    collection.cluster_applications = checked


@dataclass
class AutoPlan:
    """One cluster some collection asks to re-run after its batches."""

    cluster_id: str
    namespace_id: str
    collection_ids: set[str]
    min_documents: int | None
    cooldown_s: int


def auto_plans(session: Session) -> list[AutoPlan]:
    """Every cluster an application asks to auto-execute, over all namespaces."""
    plans: dict[str, AutoPlan] = {}
    rows = session.execute(
        select(Collection.collection_id, Collection.namespace_id, Collection.cluster_applications)
    ).all()
    for collection_id, namespace_id, apps in rows:
        for app in apps or []:
            if not isinstance(app, dict) or not app.get("auto_execute_on_batch", True) or not app.get("cluster_id"):
                continue
            plan = plans.get(app["cluster_id"])
            if plan is None:
                cooldown = app.get("cooldown_seconds")
                plans[app["cluster_id"]] = AutoPlan(
                    app["cluster_id"],
                    namespace_id,
                    {collection_id},
                    app.get("min_document_threshold"),
                    DEFAULT_COOLDOWN_S if cooldown is None else int(cooldown),
                )
            else:
                plan.collection_ids.add(collection_id)
    return list(plans.values())


def _handled_through(cluster: Cluster) -> datetime:
    stamp = (cluster.config.get("auto_execute") or {}).get("handled_through")
    return datetime.fromisoformat(stamp) if stamp else as_utc(cluster.created_at)


def newest_batch(session: Session, plan: AutoPlan, after: datetime) -> datetime | None:
    """Completion time of the newest finished batch that wrote one of the plan's collections."""
    rows = session.execute(
        select(Batch.completed_at, Batch.collection_ids)
        .where(
            Batch.namespace_id == plan.namespace_id,
            Batch.status.in_(FINISHED_BATCH),
            Batch.completed_at > after,
        )
        .order_by(Batch.completed_at.desc())
    ).all()
    for completed_at, collection_ids in rows:
        if completed_at is not None and plan.collection_ids & set(collection_ids or []):
            return as_utc(completed_at)
    return None


def _record(cluster: Cluster, **values: Any) -> None:
    cluster.config = {**cluster.config, "auto_execute": {**(cluster.config.get("auto_execute") or {}), **values}}


def run_if_due(session: Session, index: DocumentIndex, plan: AutoPlan) -> tuple[str, float | None]:
    """Queue the plan's cluster if a batch it has not answered finished; returns (what happened,
    seconds until it should be looked at again, when it must wait: a run in progress, a cooldown)."""
    cluster = session.scalar(select(Cluster).where(Cluster.cluster_id == plan.cluster_id).with_for_update())
    if cluster is None or cluster.namespace_id != plan.namespace_id:
        return "gone", None
    newest = newest_batch(session, plan, _handled_through(cluster))
    if newest is None:
        return "idle", None
    active = session.scalar(
        select(ClusterRun.run_id).where(ClusterRun.cluster_id == cluster.cluster_id, ClusterRun.status.in_(ACTIVE_RUN))
    )
    if active is not None:
        return "running", 5.0
    if cluster.last_executed_at is not None:
        ready_at = as_utc(cluster.last_executed_at) + timedelta(seconds=plan.cooldown_s)
        if ready_at > utcnow():
            return "cooldown", (ready_at - utcnow()).total_seconds()
    if plan.min_documents:
        documents = count_sources(session, index, cluster, cluster.filters)
        if documents < plan.min_documents:
            _record(cluster, handled_through=newest.isoformat(), last_outcome=f"skipped: {documents} documents")
            session.commit()
            return "skipped", None
    namespace = session.get(Namespace, cluster.namespace_id)
    if namespace is None:
        return "gone", None
    scope = NamespaceScope(namespace.org_id, namespace.namespace_id, namespace.namespace_name)
    _record(cluster, handled_through=newest.isoformat(), last_outcome="queued")
    try:
        run, _ = execute_cluster(session, index, scope, cluster.cluster_id, ExecuteClusterRequest(), trigger="batch")
    except ConflictError:  # a run started meanwhile (another process, the API): answer after it
        session.rollback()
        return "running", 5.0
    except StrataflowError as exc:  # cannot run now (too few documents for k, ...): answered, say why
        session.rollback()
        cluster = session.get(Cluster, plan.cluster_id)
        if cluster is not None:
            _record(cluster, handled_through=newest.isoformat(), last_outcome=f"not run: {exc.message}")
            session.commit()
        return "refused", None
    log.info("cluster auto-executed after a batch", extra={"cluster_id": plan.cluster_id, "run_id": run.run_id})
    return "queued", None
