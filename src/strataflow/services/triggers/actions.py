"""What a generic trigger (/v1/triggers) does when it fires, by action type.

Each action checks its resources when the trigger is created (`check_action`) and, when it
fires, starts the work as the matching endpoint would, returning the id of what it started (a
task id, or an alert / retriever execution id). A StrataflowError raised here is recorded as a
skipped firing with its message (engine/triggers.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.engine.jobs import JobContext
from strataflow.engine.lifecycle.resubmit import resubmit_batch
from strataflow.engine.lifecycle.retry import retry_batch
from strataflow.engine.lifecycle.trigger import trigger_collection
from strataflow.errors import BadRequestError, not_found
from strataflow.schemas.batches import RetryBatchRequest
from strataflow.schemas.retrievers import ExecuteRetrieverRequest
from strataflow.schemas.taxonomies import ApplyTaxonomyRequest
from strataflow.services.alerts.crud import get_alert
from strataflow.services.alerts.evaluate import evaluate
from strataflow.services.clusters.crud import get_cluster
from strataflow.services.collections.sources import get_collection
from strataflow.services.retrievers.crud import get_retriever
from strataflow.services.retrievers.execution import saved_execution
from strataflow.services.taxonomies.apply import request_apply
from strataflow.services.taxonomies.crud import get_taxonomy
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Batch, Bucket, Namespace, Trigger

# action type -> (target type stored on the trigger, the action_config key naming the target)
ACTIONS: dict[str, tuple[str, str]] = {
    "cluster": ("cluster", "cluster_id"),
    "alert_evaluation": ("alert_evaluation", "alert_id"),
    "retriever_execution": ("retriever_execution", "retriever_id"),
    "taxonomy_enrichment": ("taxonomy_enrichment", "taxonomy_id"),
    "collection_trigger": ("collection_trigger", "collection_id"),
    "batch_rerun": ("batch_rerun", "batch_id"),
}
NOT_AVAILABLE: dict[str, str] = {}


def check_action(session: Session, scope: NamespaceScope, action_type: str, config: dict[str, Any]) -> str:
    """The id of the resource the action names, which must exist; a 400 or 404 otherwise."""
    if action_type in NOT_AVAILABLE:
        raise BadRequestError(f"Action '{action_type}' is not available on this server: {NOT_AVAILABLE[action_type]}")
    if action_type not in ACTIONS:
        raise BadRequestError(f"Unknown action_type '{action_type}'", {"accepted": sorted(ACTIONS)})
    key = ACTIONS[action_type][1]
    identifier = config.get(key)
    if not isinstance(identifier, str) or not identifier:
        raise BadRequestError(f"action_config.{key} is required for action '{action_type}'")
    if action_type == "cluster":
        return get_cluster(session, scope, identifier).cluster_id
    if action_type == "alert_evaluation":
        return get_alert(session, scope, identifier).alert_id
    if action_type == "retriever_execution":
        return get_retriever(session, scope, identifier).retriever_id
    if action_type == "batch_rerun":
        return _check_batch_rerun(session, scope, identifier, config)
    if action_type == "taxonomy_enrichment":
        collection_id = config.get("collection_id")
        if not isinstance(collection_id, str):
            raise BadRequestError("action_config.collection_id is required for action 'taxonomy_enrichment'")
        get_collection(session, scope, collection_id)
        return get_taxonomy(session, scope, identifier).taxonomy_id
    return get_collection(session, scope, identifier).collection_id


def _check_batch_rerun(session: Session, scope: NamespaceScope, batch_id: str, config: dict[str, Any]) -> str:
    if config.get("filters"):
        raise BadRequestError(
            "batch_rerun filters are not available on this server: a rerun runs the batch's objects "
            "(or, with retry_failed_only, its failed ones); use a collection_trigger action with "
            "source_filters to re-process a filtered subset"
        )
    if not isinstance(config.get("retry_failed_only", False), bool):
        raise BadRequestError("action_config.retry_failed_only must be true or false")
    batch = session.scalar(select(Batch).where(Batch.batch_id == batch_id, Batch.namespace_id == scope.namespace_id))
    if batch is None:
        raise not_found("Batch", batch_id)
    return batch.batch_id


def _scope(session: Session, trigger: Trigger) -> NamespaceScope:
    namespace = session.get(Namespace, trigger.namespace_id)
    if namespace is None:
        raise BadRequestError("The trigger's namespace no longer exists")
    return NamespaceScope(trigger.org_id, namespace.namespace_id, namespace.namespace_name)


def _config(trigger: Trigger) -> dict[str, Any]:
    return dict((trigger.execution_config or {}).get("action_config") or {})


def fire_alert(context: JobContext, trigger: Trigger) -> str:
    with context.db.read_session() as session:
        scope = _scope(session, trigger)
    result = evaluate(context.db, context.services["index"], context.blobs, scope, trigger.target_id, "scheduled")
    return str(result["execution_id"])


def fire_retriever(context: JobContext, trigger: Trigger) -> str:
    config = _config(trigger)
    with context.db.read_session() as session:
        scope = _scope(session, trigger)
        request = ExecuteRetrieverRequest(inputs=config.get("inputs") or {})
        run = saved_execution(session, context.services["index"], context.blobs, scope, trigger.target_id, request)
        run.run()
        return run.execution_id


def fire_taxonomy(context: JobContext, trigger: Trigger) -> str:
    config = _config(trigger)
    with context.db.session() as session:
        scope = _scope(session, trigger)
        request = ApplyTaxonomyRequest(taxonomy_id=trigger.target_id, scroll_filters=config.get("filters"))
        answer = request_apply(session, context.services["index"], scope, str(config["collection_id"]), request)
        return str(answer["task_id"])


def fire_collection(context: JobContext, trigger: Trigger) -> str:
    config = _config(trigger)
    with context.db.session() as session:
        scope = _scope(session, trigger)
        answer = trigger_collection(
            session,
            context.blobs,
            scope,
            trigger.target_id,
            config.get("include_buckets"),
            config.get("source_filters"),
            index=context.services["index"],
            dedup_strategy=config.get("dedup_strategy"),
        )
        session.commit()
        return str(answer["task_id"])


def fire_batch_rerun(context: JobContext, trigger: Trigger) -> str:
    """Re-run the batch as POST .../resubmit would (every object, from the first tier), or, with
    `retry_failed_only`, retry its failed documents as POST .../retry with retry_mode 'all'. A batch
    still running, or with nothing to retry, is a skipped firing."""
    config = _config(trigger)
    with context.db.session() as session:
        scope = _scope(session, trigger)
        batch = session.scalar(
            select(Batch).where(Batch.batch_id == trigger.target_id, Batch.namespace_id == scope.namespace_id)
        )
        bucket = session.get(Bucket, batch.bucket_id) if batch is not None else None
        if batch is None or bucket is None:
            raise not_found("Batch", trigger.target_id)
        if config.get("retry_failed_only"):
            answer = retry_batch(session, scope, bucket, batch.batch_id, RetryBatchRequest(retry_mode="all"))
            if not answer.get("retried_count"):
                raise BadRequestError(str(answer.get("message") or "Nothing to retry"))
        else:
            answer = resubmit_batch(session, context.blobs, scope, bucket, batch.batch_id, None, True)
        return str(answer["task_id"])
