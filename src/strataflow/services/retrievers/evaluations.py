"""Evaluations: ground-truth datasets (given, or mined from interactions), evaluation runs of a
retriever over a dataset (a background task), and scoring of predictions a client brings.

The metrics and their definitions are `retrieval/metrics.py`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.clock import utcnow
from strataflow.engine.jobs import JobContext, JobOutcome, extend_lease
from strataflow.errors import AlreadyExistsError, BadRequestError, StrataflowError, not_found
from strataflow.ids import looks_like, new_id
from strataflow.index.store import DocumentIndex
from strataflow.retrieval.metrics import DEFAULT_K_VALUES, mean_scores, metric_names, score_ranking
from strataflow.schemas.evaluations import (
    CreateDatasetRequest,
    GenerateFromInteractionsRequest,
    ScorePredictionsRequest,
    StartEvaluationRequest,
)
from strataflow.schemas.retrievers import ExecuteRetrieverRequest
from strataflow.services.retrievers.crud import get_retriever
from strataflow.services.retrievers.execution import saved_execution
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.services.tenancy.tasks import create_task
from strataflow.statuses import Status, TaskType
from strataflow.store.tables import (
    EvaluationDataset,
    Namespace,
    Organization,
    RetrieverEvaluation,
    RetrieverInteraction,
    Task,
)
from strataflow.transitions import create, transition

log = logging.getLogger("strataflow.evaluations")

MAX_K = 500  # the largest page an execution answers
POSITIVE_DEFAULT = ("click", "purchase", "positive_feedback", "bookmark", "share")

# -- datasets -------------------------------------------------------------------------------------


def _save_dataset(session: Session, row: EvaluationDataset) -> EvaluationDataset:
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AlreadyExistsError(
            f"Dataset '{row.dataset_name}' already exists in this namespace", {"dataset_name": row.dataset_name}
        ) from None
    return row


def _check_queries(queries: list[dict[str, Any]]) -> None:
    ids = [q["query_id"] for q in queries]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise BadRequestError(
            f"query_id values must be unique; repeated: {', '.join(repeated)}", {"repeated": repeated}
        )
    for query in queries:
        bad = {d: g for d, g in (query.get("relevance_scores") or {}).items() if not 0 <= g <= 5}
        if bad:
            raise BadRequestError(
                f"relevance_scores must be 0-5 (query '{query['query_id']}')", {"query_id": query["query_id"]}
            )


def create_dataset(session: Session, scope: NamespaceScope, request: CreateDatasetRequest) -> EvaluationDataset:
    queries = [q.model_dump() for q in request.queries]
    _check_queries(queries)
    if looks_like("dataset", request.dataset_name):
        raise BadRequestError("Dataset names may not start with 'ds_' (that prefix marks ids)")
    now = utcnow()
    return _save_dataset(
        session,
        EvaluationDataset(
            dataset_id=new_id("dataset"),
            namespace_id=scope.namespace_id,
            dataset_name=request.dataset_name,
            description=request.description,
            queries=queries,
            metadata_=request.metadata,
            created_at=now,
            updated_at=now,
        ),
    )


def get_dataset(session: Session, scope: NamespaceScope, identifier: str) -> EvaluationDataset:
    column = EvaluationDataset.dataset_id if looks_like("dataset", identifier) else EvaluationDataset.dataset_name
    row = session.scalar(
        select(EvaluationDataset).where(EvaluationDataset.namespace_id == scope.namespace_id, column == identifier)
    )
    if row is None:
        raise not_found("Dataset", identifier)
    return row


def list_datasets(
    session: Session, scope: NamespaceScope, page: int, page_size: int
) -> tuple[list[EvaluationDataset], int]:
    query = select(EvaluationDataset).where(EvaluationDataset.namespace_id == scope.namespace_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(EvaluationDataset.created_at.desc(), EvaluationDataset.dataset_id)
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    return list(rows), total


def dataset_view(row: EvaluationDataset, internal_id: str) -> dict[str, Any]:
    return {
        "dataset_id": row.dataset_id,
        "dataset_name": row.dataset_name,
        "description": row.description,
        "queries": list(row.queries),
        "query_count": len(row.queries),
        "metadata": row.metadata_,
        "namespace_id": row.namespace_id,
        "internal_id": internal_id,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def generate_from_interactions(
    session: Session, scope: NamespaceScope, identifier: str, request: GenerateFromInteractionsRequest
) -> EvaluationDataset:
    """One query per distinct query snapshot with at least `min_interactions` positive interactions;
    its relevant documents are the ones those interactions were on (binary relevance)."""
    retriever = get_retriever(session, scope, identifier)
    positive = {t.lower() for t in request.positive_interaction_types or POSITIVE_DEFAULT}
    since = utcnow() - timedelta(days=request.lookback_days)
    rows = session.scalars(
        select(RetrieverInteraction)
        .where(
            RetrieverInteraction.namespace_id == scope.namespace_id,
            RetrieverInteraction.retriever_id == retriever.retriever_id,
            RetrieverInteraction.occurred_at >= since,
        )
        .order_by(RetrieverInteraction.occurred_at, RetrieverInteraction.interaction_id)
    ).all()
    by_query: dict[str, tuple[dict[str, Any], list[str], int]] = {}
    for row in rows:
        if row.query_snapshot is None or not positive & set(row.interaction_type):
            continue
        key = json.dumps(row.query_snapshot, sort_keys=True, default=str)
        snapshot, documents, count = by_query.get(key, (row.query_snapshot, [], 0))
        if row.feature_id not in documents:
            documents.append(row.feature_id)
        by_query[key] = (snapshot, documents, count + 1)
    queries = [
        {"query_id": f"q{n:04d}", "query_input": snapshot, "relevant_documents": documents, "relevance_scores": None}
        for n, (snapshot, documents, count) in enumerate(by_query.values())
        if count >= request.min_interactions
    ]
    if not queries:
        raise BadRequestError(
            f"No query of retriever '{retriever.retriever_name}' has {request.min_interactions} or more positive "
            f"interactions ({', '.join(sorted(positive))}) in the last {request.lookback_days} days",
            {"retriever_id": retriever.retriever_id, "queries_seen": len(by_query)},
        )
    now = utcnow()
    name = request.dataset_name or f"auto_{retriever.retriever_id}_{now:%Y%m%d%H%M%S}"
    return _save_dataset(
        session,
        EvaluationDataset(
            dataset_id=new_id("dataset"),
            namespace_id=scope.namespace_id,
            dataset_name=name,
            description=f"Generated from interactions with retriever {retriever.retriever_id}",
            queries=queries,
            metadata_={
                "source": "interactions",
                "retriever_id": retriever.retriever_id,
                "positive_interaction_types": sorted(positive),
                "min_interactions": request.min_interactions,
                "lookback_days": request.lookback_days,
            },
            created_at=now,
            updated_at=now,
        ),
    )


# -- evaluation runs ------------------------------------------------------------------------------


def _k_values(requested: list[int] | None) -> list[int]:
    values = sorted(set(requested or DEFAULT_K_VALUES))
    if any(not 1 <= k <= MAX_K for k in values):
        raise BadRequestError(f"k_values must be between 1 and {MAX_K}", {"k_values": requested})
    return values


def start_evaluation(
    session: Session, scope: NamespaceScope, identifier: str, request: StartEvaluationRequest
) -> tuple[RetrieverEvaluation, Task]:
    retriever = get_retriever(session, scope, identifier)
    dataset = get_dataset(session, scope, request.dataset_name)
    config = request.evaluation_config
    settings = {
        "k_values": _k_values(config.k_values if config else None),
        "metrics": metric_names(config.metrics if config else None),
    }
    evaluation = RetrieverEvaluation(
        evaluation_id=new_id("evaluation"),
        namespace_id=scope.namespace_id,
        retriever_id=retriever.retriever_id,
        dataset_id=dataset.dataset_id,
        dataset_name=dataset.dataset_name,
        config=settings,
        query_count=len(dataset.queries),
    )
    task = create_task(
        session,
        scope.org_id,
        TaskType.EVALUATIONS_RUN,
        namespace_id=scope.namespace_id,
        additional_data={"evaluation_id": evaluation.evaluation_id, "retriever_id": retriever.retriever_id},
    )
    evaluation.task_id = task.task_id
    create(session, evaluation, Status.PENDING, "requested")
    session.commit()
    return evaluation, task


def evaluate_queries(
    session: Session,
    index: DocumentIndex,
    blobs: BlobStore,
    scope: NamespaceScope,
    retriever_id: str,
    queries: list[dict[str, Any]],
    config: dict[str, Any],
    keep_alive: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Run each query through the retriever and score its ranking at every k."""
    k_values: list[int] = config["k_values"]
    metrics: list[str] = config["metrics"]
    per_k: dict[int, list[dict[str, float]]] = {k: [] for k in k_values}
    outcomes: list[dict[str, Any]] = []
    for position, query in enumerate(queries):
        if keep_alive is not None and position and position % 20 == 0:
            keep_alive()  # a long run keeps its task's lease, so no other runner starts it over meanwhile
        if not query.get("query_input"):
            outcomes.append({"query_id": query["query_id"], "status": "skipped", "error": "empty query_input"})
            continue
        try:
            run = saved_execution(
                session,
                index,
                blobs,
                scope,
                retriever_id,
                ExecuteRetrieverRequest(inputs=query["query_input"], limit=max(k_values)),
            )
            ranked = [d["document_id"] for d in run.run()["documents"]]
        except StrataflowError as exc:
            outcomes.append({"query_id": query["query_id"], "status": "skipped", "error": exc.message})
            continue
        for k in k_values:
            per_k[k].append(
                score_ranking(ranked, query["relevant_documents"], k, metrics, query.get("relevance_scores"))
            )
        outcomes.append({"query_id": query["query_id"], "status": "evaluated", "retrieved_count": len(ranked)})
    by_k = {str(k): mean_scores(rows, metrics) for k, rows in per_k.items()}
    evaluated = sum(1 for o in outcomes if o["status"] == "evaluated")
    return {
        "metrics_by_k": by_k,
        "overall_metrics": {f"{m}@{k}": v for k, values in by_k.items() for m, v in values.items()},
        "evaluated_queries": evaluated,
        "skipped_queries": len(outcomes) - evaluated,
        "query_results": outcomes,
    }


def evaluation_job(context: JobContext, task: Task) -> JobOutcome:
    """The background run: IN_PROGRESS, every query, then COMPLETED with the metrics (or FAILED).
    Queries run outside any write transaction; re-running after a crash starts over from the
    dataset (the result depends on nothing else), so a retried task records one outcome."""
    evaluation_id = str((task.additional_data or {}).get("evaluation_id"))
    index: DocumentIndex = context.services["index"]
    with context.db.transaction() as session:
        evaluation = session.get(RetrieverEvaluation, evaluation_id)
        if evaluation is None:
            return JobOutcome(status=Status.FAILED, error=f"evaluation {evaluation_id} no longer exists")
        if evaluation.status == Status.PENDING:
            transition(session, evaluation, Status.IN_PROGRESS, "evaluation started")
        if evaluation.status != Status.IN_PROGRESS:  # already finished by an earlier claim of this task
            return JobOutcome(status=Status.COMPLETED, additional_data={"evaluation_status": evaluation.status.value})
    result: dict[str, Any] | None = None
    failure: str | None = None
    with context.db.read_session() as session:
        evaluation = session.get(RetrieverEvaluation, evaluation_id)
        namespace = session.get(Namespace, evaluation.namespace_id) if evaluation else None
        dataset = session.get(EvaluationDataset, evaluation.dataset_id) if evaluation else None
        if evaluation is None or namespace is None:
            return JobOutcome(status=Status.FAILED, error=f"evaluation {evaluation_id} no longer exists")
        scope = NamespaceScope(namespace.org_id, namespace.namespace_id, namespace.namespace_name)
        try:
            if dataset is None:
                raise not_found("Dataset", evaluation.dataset_name)
            result = evaluate_queries(
                session,
                index,
                context.blobs,
                scope,
                evaluation.retriever_id,
                list(dataset.queries),
                dict(evaluation.config),
                keep_alive=lambda: extend_lease(context.db, task.task_id, task.lease_owner, task.fence_token),
            )
        except StrataflowError as exc:  # the retriever or dataset went away, or no collection is left
            failure = exc.message
    with context.db.transaction() as session:
        evaluation = session.get(RetrieverEvaluation, evaluation_id)
        if evaluation is None:
            return JobOutcome(status=Status.FAILED, error=f"evaluation {evaluation_id} no longer exists")
        if result is None:
            transition(session, evaluation, Status.FAILED, failure or "failed", error=failure, completed_at=utcnow())
            return JobOutcome(status=Status.FAILED, error=failure)
        evaluation.overall_metrics = result["overall_metrics"]
        evaluation.metrics_by_k = result["metrics_by_k"]
        evaluation.evaluated_queries = result["evaluated_queries"]
        evaluation.skipped_queries = result["skipped_queries"]
        evaluation.query_results = result["query_results"]
        transition(session, evaluation, Status.COMPLETED, "evaluation finished", completed_at=utcnow())
    log.info("evaluation %s: %d queries evaluated", evaluation_id, result["evaluated_queries"])
    return JobOutcome(
        status=Status.COMPLETED,
        outputs=[{"evaluation_id": evaluation_id, "overall_metrics": result["overall_metrics"]}],
    )


def get_evaluation(
    session: Session, scope: NamespaceScope, retriever_identifier: str, evaluation_id: str
) -> RetrieverEvaluation:
    retriever = get_retriever(session, scope, retriever_identifier)
    row = session.scalar(
        select(RetrieverEvaluation).where(
            RetrieverEvaluation.namespace_id == scope.namespace_id,
            RetrieverEvaluation.retriever_id == retriever.retriever_id,
            RetrieverEvaluation.evaluation_id == evaluation_id,
        )
    )
    if row is None:
        raise not_found("Evaluation", evaluation_id)
    return row


_STATUSES = {"pending": Status.PENDING, "in_progress": Status.IN_PROGRESS, "completed": Status.COMPLETED}
_STATUSES["failed"] = Status.FAILED


def list_evaluations(
    session: Session,
    scope: NamespaceScope,
    retriever_identifier: str,
    status: str | None,
    dataset_name: str | None,
    page: int,
    page_size: int,
) -> tuple[list[RetrieverEvaluation], int]:
    retriever = get_retriever(session, scope, retriever_identifier)
    query = select(RetrieverEvaluation).where(
        RetrieverEvaluation.namespace_id == scope.namespace_id,
        RetrieverEvaluation.retriever_id == retriever.retriever_id,
    )
    if status:
        if status.lower() not in _STATUSES:
            raise BadRequestError(f"Unknown evaluation status '{status}'", {"supported": list(_STATUSES)})
        query = query.where(RetrieverEvaluation.status == _STATUSES[status.lower()])
    if dataset_name:
        query = query.where(RetrieverEvaluation.dataset_name == dataset_name)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(RetrieverEvaluation.created_at.desc(), RetrieverEvaluation.evaluation_id)
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    return list(rows), total


def evaluation_view(row: RetrieverEvaluation, internal_id: str) -> dict[str, Any]:
    """EvaluationRecord (status in the SDK's lower case)."""
    total = row.evaluated_queries + row.skipped_queries
    return {
        "evaluation_id": row.evaluation_id,
        "retriever_id": row.retriever_id,
        "dataset_id": row.dataset_id,
        "dataset_name": row.dataset_name,
        "task_id": row.task_id,
        "config": dict(row.config),
        "status": row.status.value.lower(),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
        "namespace_id": row.namespace_id,
        "internal_id": internal_id,
        "query_count": row.query_count,
        "overall_metrics": row.overall_metrics,
        "metrics_by_k": row.metrics_by_k,
        "total_queries": total if row.status in (Status.COMPLETED, Status.FAILED) else row.query_count,
        "evaluated_queries": row.evaluated_queries,
        "skipped_queries": row.skipped_queries,
        "error_message": row.error,
        "query_results": row.query_results,
    }


# -- scoring a client's predictions ---------------------------------------------------------------


def score_predictions(request: ScorePredictionsRequest) -> dict[str, Any]:
    """Each {predicted, ground_truth} pair scored at k (default: every predicted item), and the mean."""
    if request.items is not None and (request.predicted is not None or request.ground_truth is not None):
        raise BadRequestError("Send either predicted + ground_truth or items, not both")
    if request.items is not None:
        pairs = [(item.predicted, item.ground_truth) for item in request.items]
    elif request.predicted is not None and request.ground_truth is not None:
        pairs = [(request.predicted, request.ground_truth)]
    else:
        raise BadRequestError("Send predicted and ground_truth, or items: [{predicted, ground_truth}, ...]")
    if not pairs:
        raise BadRequestError("items is empty: nothing to score")
    metrics = metric_names(request.metrics or ["precision", "recall", "f1"])
    per_item = []
    for predicted, truth in pairs:
        considered = predicted[: request.k] if request.k else predicted
        per_item.append(score_ranking(considered, truth, max(len(considered), 1), metrics))
    return {
        "metrics": metrics,
        "k": request.k,
        "count": len(per_item),
        "per_item": per_item,
        "aggregate": mean_scores(per_item, metrics),
    }


def org_internal_id(session: Session, org_id: str) -> str:
    org = session.get(Organization, org_id)
    return org.internal_id if org is not None else ""
