"""Interactions: what users did with a retriever's results (click, purchase, dwell, ...), each tied to
the execution that showed the result and the position it was shown at."""

from __future__ import annotations

from datetime import UTC
from typing import Any, get_args

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.errors import BadRequestError, StrataflowError, ValidationError, not_found
from strataflow.ids import new_id
from strataflow.schemas.evaluations import (
    BulkInteractionsRequest,
    InteractionType,
    ListInteractionsRequest,
    SearchInteraction,
)
from strataflow.services.retrievers.crud import get_retriever
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.filters import FieldMap, compile_filters, sort_expression
from strataflow.store.pagination import PageRequest, paginate
from strataflow.store.tables import RetrieverExecution, RetrieverInteraction

INTERACTION_FIELDS = FieldMap(
    columns={
        "interaction_id": RetrieverInteraction.interaction_id,
        "feature_id": RetrieverInteraction.feature_id,
        "document_id": RetrieverInteraction.feature_id,
        "position": RetrieverInteraction.position,
        "user_id": RetrieverInteraction.user_id,
        "session_id": RetrieverInteraction.session_id,
        "execution_id": RetrieverInteraction.execution_id,
        "retriever_id": RetrieverInteraction.retriever_id,
        "document_score": RetrieverInteraction.document_score,
        "occurred_at": RetrieverInteraction.occurred_at,
        "created_at": RetrieverInteraction.created_at,
    },
    json_columns={"metadata": RetrieverInteraction.metadata_, "query_snapshot": RetrieverInteraction.query_snapshot},
)


def _problem(field: str, message: str) -> ValidationError:
    return ValidationError(
        message, {"validation_errors": [{"type": "value_error", "location": field, "message": message}]}
    )


def _build(session: Session, scope: NamespaceScope, request: SearchInteraction) -> RetrieverInteraction:
    """The row for one interaction, checked; raises without writing anything."""
    types = list(dict.fromkeys(request.interaction_type))
    if request.result_set_size == 0 and types != ["zero_results"]:
        raise _problem("result_set_size", "result_set_size 0 is only for a zero_results interaction")
    if request.result_set_size is not None and request.result_set_size and request.position >= request.result_set_size:
        raise _problem("position", f"position {request.position} is outside a result set of {request.result_set_size}")
    retriever_id = get_retriever(session, scope, request.retriever_id).retriever_id if request.retriever_id else None
    snapshot = request.query_snapshot
    if request.execution_id:
        execution = session.scalar(
            select(RetrieverExecution).where(
                RetrieverExecution.namespace_id == scope.namespace_id,
                RetrieverExecution.execution_id == request.execution_id,
            )
        )
        if execution is None:
            raise not_found("Execution", request.execution_id)
        if retriever_id and execution.retriever_id != retriever_id:
            raise BadRequestError(
                f"Execution '{request.execution_id}' is not an execution of retriever '{request.retriever_id}'",
                {"execution_id": request.execution_id, "retriever_id": request.retriever_id},
            )
        retriever_id = execution.retriever_id
        snapshot = snapshot if snapshot is not None else dict(execution.inputs)
    elif retriever_id:
        raise _problem("execution_id", "execution_id is required when retriever_id is given (every execute answers it)")
    occurred = request.occurred_at or utcnow()
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)  # a naive time is read as UTC
    return RetrieverInteraction(
        interaction_id=new_id("interaction"),
        namespace_id=scope.namespace_id,
        feature_id=request.feature_id,
        interaction_type=types,
        position=request.position,
        metadata_=request.metadata,
        user_id=request.user_id,
        session_id=request.session_id,
        execution_id=request.execution_id,
        retriever_id=retriever_id,
        query_snapshot=snapshot,
        document_score=request.document_score,
        result_set_size=request.result_set_size,
        feature_uri=request.feature_uri,
        occurred_at=occurred,
        created_at=utcnow(),
    )


def create_interaction(session: Session, scope: NamespaceScope, request: SearchInteraction) -> RetrieverInteraction:
    row = _build(session, scope, request)
    session.add(row)
    session.commit()
    return row


def create_interactions(
    session: Session, scope: NamespaceScope, request: BulkInteractionsRequest
) -> tuple[list[tuple[int, RetrieverInteraction]], list[str]]:
    """Each valid interaction is recorded; each invalid one is reported by its index and written nowhere."""
    rows: list[tuple[int, RetrieverInteraction]] = []
    errors: list[str] = []
    for position, item in enumerate(request.interactions):
        try:
            rows.append((position, _build(session, scope, item)))
        except StrataflowError as exc:
            errors.append(f"interactions[{position}]: {exc.message}")
    session.add_all([row for _, row in rows])
    session.commit()
    return rows, errors


def get_interaction(session: Session, scope: NamespaceScope, interaction_id: str) -> RetrieverInteraction:
    row = session.scalar(
        select(RetrieverInteraction).where(
            RetrieverInteraction.namespace_id == scope.namespace_id,
            RetrieverInteraction.interaction_id == interaction_id,
        )
    )
    if row is None:
        raise not_found("Interaction", interaction_id)
    return row


def delete_interaction(session: Session, scope: NamespaceScope, interaction_id: str) -> str:
    row = get_interaction(session, scope, interaction_id)
    session.delete(row)
    session.commit()
    return interaction_id


def list_interactions(
    session: Session, scope: NamespaceScope, request: ListInteractionsRequest, page: PageRequest
) -> tuple[list[RetrieverInteraction], dict[str, Any], int]:
    query = select(RetrieverInteraction).where(RetrieverInteraction.namespace_id == scope.namespace_id)
    for name in ("execution_id", "retriever_id", "session_id", "user_id", "feature_id"):
        value = getattr(request, name)
        if value is not None:
            query = query.where(getattr(RetrieverInteraction, name) == value)
    if request.interaction_type:
        if request.interaction_type not in get_args(InteractionType):
            raise BadRequestError(
                f"Unknown interaction_type '{request.interaction_type}'",
                {"interaction_type": request.interaction_type, "supported": list(get_args(InteractionType))},
            )
        # the types are a JSON list; its text holds each as "type" (quoted), so a LIKE finds exactly one
        query = query.where(cast(RetrieverInteraction.interaction_type, String).like(f'%"{request.interaction_type}"%'))
    clause = compile_filters(request.filters, INTERACTION_FIELDS)
    if clause is not None:
        query = query.where(clause)
    if request.search:
        query = query.where(RetrieverInteraction.feature_id.contains(request.search))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if request.sort is not None:
        query = query.order_by(sort_expression(request.sort.field, request.sort.direction, INTERACTION_FIELDS))
    query = query.order_by(RetrieverInteraction.created_at.desc(), RetrieverInteraction.interaction_id)
    result = paginate(session, query, page)
    return result.rows, {**result.pagination, "total": total}, total


def interaction_view(row: RetrieverInteraction) -> dict[str, Any]:
    """InteractionResponse."""
    return {
        "interaction_id": row.interaction_id,
        "feature_id": row.feature_id,
        "document_id": row.feature_id,
        "interaction_type": list(row.interaction_type),
        "position": row.position,
        "metadata": row.metadata_,
        "user_id": row.user_id,
        "session_id": row.session_id,
        "execution_id": row.execution_id,
        "retriever_id": row.retriever_id,
        "query_snapshot": row.query_snapshot,
        "document_score": row.document_score,
        "result_set_size": row.result_set_size,
        "feature_uri": row.feature_uri,
        "occurred_at": row.occurred_at.isoformat(),
        "timestamp": row.created_at.isoformat(),
        "deduplicated": False,
    }
