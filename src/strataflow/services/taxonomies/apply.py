"""apply-taxonomy: enrich the documents a collection already holds, as a background task.

Documents are read in document_id order, `batch_size` at a time, joined, and written back
(vectors included, so nothing but the enrichment changes). After every chunk the task records
the last document id done and its progress, so a task taken over after a lost lease resumes
where it stopped instead of starting again. Before each chunk it checks the taxonomy is still
there at the same version and the task was not killed; if not, it stops: every document
written so far carries one whole version's values (a chunk is one upsert).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.engine.jobs import JobContext, JobOutcome, extend_lease
from strataflow.errors import BadRequestError
from strataflow.index.records import timestamp
from strataflow.index.store import DocumentIndex
from strataflow.schemas.taxonomies import ApplyTaxonomyRequest
from strataflow.services.collections.sources import get_collection
from strataflow.services.documents.crud import where_of
from strataflow.services.taxonomies import applications
from strataflow.services.taxonomies.checks import check_target
from strataflow.services.taxonomies.crud import get_taxonomy
from strataflow.services.taxonomies.materialize import enrich_documents, record_path_nodes
from strataflow.services.taxonomies.plans import join_plan
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.services.tenancy.tasks import create_task
from strataflow.statuses import Status, TaskType
from strataflow.store.tables import Collection, Task, Taxonomy

_LEASE_RENEW_S = 15.0


def request_apply(
    session: Session,
    index: DocumentIndex,
    scope: NamespaceScope,
    collection_identifier: str,
    request: ApplyTaxonomyRequest,
) -> dict[str, Any]:
    """Check everything, then queue the task (ApplyTaxonomyResponse)."""
    collection = get_collection(session, scope, collection_identifier)
    taxonomy = get_taxonomy(session, scope, request.taxonomy_id, lock=True)
    application = applications.application_of(collection, taxonomy.taxonomy_id)
    if application is None:
        raise BadRequestError(
            f"Collection '{collection.collection_name}' does not apply taxonomy "
            f"'{taxonomy.taxonomy_id}'; add it to the collection's taxonomy_applications first",
            {"taxonomy_id": taxonomy.taxonomy_id},
        )
    if (request.budget_limits or {}).get("max_credits") is not None:
        raise BadRequestError(
            "max_credits is not accepted: taxonomy enrichment bills 0 credits, so a credit cap "
            "could never stop this job; use max_time_ms"
        )
    # The documents enriched: this collection's, or those of the application's target collection.
    written = applications.written_collection(session, collection, application)
    check_target(dict(taxonomy.config), written)
    # The application's scroll_filters and the request's both hold; a bad filter is refused now.
    where_of(written, application.get("scroll_filters"))
    where = _both(written, application.get("scroll_filters"), request.scroll_filters)
    estimated = index.count(written.collection_id, where) if index.has_table(written.collection_id) else 0
    spec = {
        "collection_id": written.collection_id,
        "applied_by": collection.collection_id,
        "hierarchical_enrichment_style": application.get("hierarchical_enrichment_style"),
        "taxonomy_id": taxonomy.taxonomy_id,
        "version": taxonomy.version,
        "scroll_filters": request.scroll_filters,
        "application_filters": application.get("scroll_filters"),
        "batch_size": request.batch_size,
        "parallelism": request.parallelism,
        "max_time_ms": (request.budget_limits or {}).get("max_time_ms"),
    }
    task = create_task(
        session,
        scope.org_id,
        TaskType.TAXONOMIES_MATERIALIZE,
        namespace_id=scope.namespace_id,
        inputs=[spec],
        additional_data={
            "taxonomy_id": taxonomy.taxonomy_id,
            "collection_id": collection.collection_id,
            "target_collection_id": written.collection_id,
            "progress": {"processed": 0, "total": estimated},
        },
    )
    session.commit()
    return {
        "task_id": task.task_id,
        "status": task.status,
        "collection_id": collection.collection_id,
        "target_collection_id": written.collection_id,
        "taxonomy_id": taxonomy.taxonomy_id,
        "estimated_documents": estimated,
    }


def _both(collection: Collection, *filters: dict[str, Any] | None) -> str | None:
    clauses = [c for f in filters if (c := where_of(collection, f))]
    return " AND ".join(f"({c})" for c in clauses) or None


def _still_wanted(context: JobContext, task_id: str, taxonomy_id: str, version: int) -> str | None:
    """Why the job must stop now, or None."""
    with context.db.read_session() as session:
        task = session.get(Task, task_id)
        taxonomy = session.get(Taxonomy, taxonomy_id)
        if task is None or task.status != Status.PROCESSING:
            return "killed"
        if taxonomy is None:
            return "taxonomy deleted"
        if taxonomy.version != version:
            return f"taxonomy changed to version {taxonomy.version}"
    return None


def _save_progress(context: JobContext, task_id: str, progress: dict[str, Any]) -> None:
    with context.db.transaction() as session:
        task = session.get(Task, task_id)
        if task is not None:
            task.additional_data = {**(task.additional_data or {}), "progress": progress}


def apply_job(context: JobContext, task: Task) -> JobOutcome:
    spec = (task.inputs or [{}])[0]
    index: DocumentIndex = context.services["index"]
    progress = dict((task.additional_data or {}).get("progress") or {})
    with context.db.read_session() as session:
        collection = session.get(Collection, spec["collection_id"])
        taxonomy = session.get(Taxonomy, spec["taxonomy_id"])
        if collection is None or taxonomy is None:
            return JobOutcome(Status.FAILED, error="The collection or the taxonomy no longer exists")
        style = spec.get("hierarchical_enrichment_style")
        plan = join_plan(session, taxonomy, dict(taxonomy.config), taxonomy.version, collection, style)
        where = _both(collection, spec.get("application_filters"), spec.get("scroll_filters"))
        session.expunge_all()
    started, renewed = time.monotonic(), time.monotonic()
    stop: str | None = None
    while True:
        stop = _still_wanted(context, task.task_id, plan.taxonomy_id, plan.version)
        if stop is not None:
            break
        if spec.get("max_time_ms") and (time.monotonic() - started) * 1000 > spec["max_time_ms"]:
            stop = "budget"
            break
        after = progress.get("last_document_id")
        clauses = [c for c in (where, f"document_id > '{after}'" if after else None) if c]
        chunk = index.query(
            collection.collection_id,
            " AND ".join(f"({c})" for c in clauses) or None,
            order=[("document_id", True)],
            limit=int(spec.get("batch_size") or 1000),
            with_vectors=True,
        )
        if not chunk:
            break
        clock = time.monotonic()
        counts, paths = enrich_documents(index, plan, chunk, int(spec.get("parallelism") or 1))
        counts["join_ms"] = int((time.monotonic() - clock) * 1000)
        clock = time.monotonic()
        now = timestamp()
        for doc in chunk:
            doc.updated_at = now
        index.upsert(collection.collection_id, chunk)
        record_path_nodes(context.db, plan.taxonomy_id, paths)
        counts["write_ms"] = int((time.monotonic() - clock) * 1000)
        for key, value in counts.items():
            progress[key] = int(progress.get(key) or 0) + value
        progress.update(
            last_document_id=chunk[-1].document_id,
            batches=int(progress.get("batches") or 0) + 1,
            version=plan.version,
            updated_at=utcnow().isoformat(),
        )
        _save_progress(context, task.task_id, progress)
        if time.monotonic() - renewed >= _LEASE_RENEW_S:
            renewed = time.monotonic()
            extend_lease(context.db, task.task_id, task.lease_owner)
    summary = {"progress": progress, "stats": {k: progress.get(k, 0) for k in ("processed", "enriched", "errors")}}
    if stop == "killed":
        return JobOutcome(Status.CANCELED, additional_data=summary)
    if stop == "budget":
        return JobOutcome(
            Status.CANCELED,
            additional_data={
                **summary,
                "stopped_at": progress.get("last_document_id"),
                "budget": {"max_time_ms": spec["max_time_ms"]},
            },
        )
    if stop is not None:
        return JobOutcome(
            Status.FAILED,
            additional_data=summary,
            error=f"Stopped: {stop}; apply the taxonomy again to enrich every document with one version",
        )
    status = Status.COMPLETED_WITH_ERRORS if progress.get("errors") else Status.COMPLETED
    return JobOutcome(status, outputs=[summary["stats"]], additional_data=summary)
