"""Retriever evaluations: ground-truth datasets, evaluation runs (background tasks), and scoring."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from strataflow.api.deps import DbDep, PrincipalDep, ReadDbDep, ScopeDep
from strataflow.retrieval.metrics import DEFAULT_K_VALUES, METRICS
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.evaluations import (
    CreateDatasetRequest,
    GenerateFromInteractionsRequest,
    ScorePredictionsRequest,
    StartEvaluationRequest,
)
from strataflow.services.retrievers import evaluations as service

router = APIRouter(tags=["Retriever Evaluations"], responses=ERROR_RESPONSES)
PageNumber = Annotated[int, Query(ge=1)]
PageSize = Annotated[int, Query(ge=1, le=100)]


@router.get("/v1/evaluations")
def discover(principal: PrincipalDep) -> dict[str, Any]:
    """Where the evaluation routes are (datasets per namespace, runs per retriever) and what they compute."""
    return {
        "datasets": "/v1/retrievers/evaluations/datasets",
        "runs": "/v1/retrievers/{retriever_id}/evaluations",
        "generate_from_interactions": "/v1/retrievers/{retriever_id}/evaluations/generate-from-interactions",
        "score": "/v1/evaluations/score",
        "metrics": list(METRICS),
        "default_k_values": list(DEFAULT_K_VALUES),
    }


@router.post("/v1/evaluations/score")
def score(request: ScorePredictionsRequest, principal: PrincipalDep) -> dict[str, Any]:
    return service.score_predictions(request)


@router.post("/v1/retrievers/evaluations/datasets")
def create_dataset(request: CreateDatasetRequest, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    row = service.create_dataset(session, scope, request)
    return service.dataset_view(row, service.org_internal_id(session, scope.org_id))


@router.get("/v1/retrievers/evaluations/datasets")
def list_datasets(
    scope: ScopeDep, session: ReadDbDep, page: PageNumber = 1, page_size: PageSize = 20
) -> dict[str, Any]:
    rows, total = service.list_datasets(session, scope, page, page_size)
    internal_id = service.org_internal_id(session, scope.org_id)
    return {
        "datasets": [service.dataset_view(r, internal_id) for r in rows],
        "total": total,
        "page": page,
        "page_size": page_size,
    }


@router.get("/v1/retrievers/evaluations/datasets/{dataset_identifier}")
def get_dataset(dataset_identifier: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    row = service.get_dataset(session, scope, dataset_identifier)
    return service.dataset_view(row, service.org_internal_id(session, scope.org_id))


@router.post("/v1/retrievers/{retriever_id}/evaluations/generate-from-interactions")
def generate_dataset(
    retriever_id: str, scope: ScopeDep, session: DbDep, request: GenerateFromInteractionsRequest | None = None
) -> dict[str, Any]:
    row = service.generate_from_interactions(session, scope, retriever_id, request or GenerateFromInteractionsRequest())
    return service.dataset_view(row, service.org_internal_id(session, scope.org_id))


@router.post("/v1/retrievers/{retriever_id}/evaluations", status_code=202)
def start_evaluation(
    retriever_id: str, request: StartEvaluationRequest, scope: ScopeDep, session: DbDep
) -> dict[str, Any]:
    evaluation, task = service.start_evaluation(session, scope, retriever_id, request)
    return {
        "task_id": task.task_id,
        "evaluation_id": evaluation.evaluation_id,
        "task_type": "retriever.evaluation",
        "status": "pending",
        "created_at": evaluation.created_at.isoformat(),
    }


@router.get("/v1/retrievers/{retriever_id}/evaluations")
def list_evaluations(
    retriever_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    status: str | None = None,
    dataset_name: str | None = None,
    page: PageNumber = 1,
    page_size: PageSize = 20,
) -> dict[str, Any]:
    rows, total = service.list_evaluations(session, scope, retriever_id, status, dataset_name, page, page_size)
    internal_id = service.org_internal_id(session, scope.org_id)
    return {
        "evaluations": [service.evaluation_view(r, internal_id) for r in rows],
        "total": total,
        "page": page,
        "page_size": page_size,
    }


@router.get("/v1/retrievers/{retriever_id}/evaluations/{evaluation_id}")
def get_evaluation(retriever_id: str, evaluation_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    row = service.get_evaluation(session, scope, retriever_id, evaluation_id)
    return service.evaluation_view(row, service.org_internal_id(session, scope.org_id))
