"""More ways to use a saved retriever: many inputs in one call (execute/batch), and clone."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from strataflow.schemas.retrievers import (
    BatchQuery,
    CloneRetrieverRequest,
    CreateRetrieverRequest,
    ExecuteBatchRequest,
    ExecuteRetrieverRequest,
)
from strataflow.services.retrievers.crud import create_retriever, get_retriever
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Retriever


def batch_item_request(request: ExecuteBatchRequest, query: BatchQuery) -> ExecuteRetrieverRequest:
    return ExecuteRetrieverRequest(
        inputs=query.inputs,
        filters=query.filters,
        limit=request.limit,
        return_vectors=request.return_vectors,
        return_presigned_urls=request.return_presigned_urls,
    )


def clone_retriever(
    session: Session, scope: NamespaceScope, identifier: str, request: CloneRetrieverRequest
) -> tuple[Retriever, str]:
    """A new retriever from a saved one: every field the request gives replaces the source's."""
    source = get_retriever(session, scope, identifier)
    given = request.model_dump(exclude_unset=True, exclude_none=True)
    body: dict[str, Any] = {
        "retriever_name": request.retriever_name,
        "description": given.get("description", source.description),
        "collection_identifiers": given.get("collection_identifiers", list(source.collection_ids)),
        "stages": request.stages if request.stages is not None else list(source.stages),
        "input_schema": given.get("input_schema", dict(source.input_schema)),
        "budget_limits": given.get("budget_limits", dict(source.budget_limits or {})) or None,
        "tags": given.get("tags", list(source.tags or [])),
        "display_config": given.get("display_config", source.display_config),
        "metadata": dict(source.metadata_ or {}),
    }
    source_id = source.retriever_id
    return create_retriever(session, scope, CreateRetrieverRequest.model_validate(body)), source_id
