"""Retriever executions kept and explained, the stage catalogue, typeahead, batch execute and clone.

Included before the retrievers router: `/v1/retrievers/stages` and `/typeahead` must not be read
as a retriever id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from strataflow.api.deps import DbDep, PageDep, ReadDbDep, RuntimeDep, ScopeDep
from strataflow.api.errors import error_body
from strataflow.api.retrievers import recorder_for
from strataflow.errors import StrataflowError
from strataflow.retrieval.stages import catalogue
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.retrievers import (
    CloneRetrieverRequest,
    ExecuteBatchRequest,
    ExplainRetrieverRequest,
    ListAdhocExecutionsRequest,
    ListExecutionsRequest,
)
from strataflow.services.retrievers import history
from strataflow.services.retrievers.crud import get_retriever, retriever_view
from strataflow.services.retrievers.execution import saved_execution
from strataflow.services.retrievers.explain import explain
from strataflow.services.retrievers.operations import batch_item_request, clone_retriever
from strataflow.services.retrievers.typeahead import typeahead
from strataflow.store.pagination import PageRequest
from strataflow.store.tables import RetrieverExecution

router = APIRouter(prefix="/v1/retrievers", tags=["Retrievers"], responses=ERROR_RESPONSES)


@router.get("/stages", tags=["Retriever Stages"])
def list_stages() -> list[dict[str, Any]]:
    """The stages this server runs, with each one's parameter schema (no key needed)."""
    return catalogue()


@router.get("/typeahead")
def typeahead_suggestions(
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    fields: str | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    return typeahead(session, runtime.index, scope, q, fields, limit)


def _page_metadata(page: PageRequest, total: int, shown: int) -> dict[str, Any]:
    return {
        "total": total,
        "limit": page.limit,
        "offset": page.start,
        "has_next": page.start + shown < total,
        "page": page.start // page.limit + 1,
        "page_size": page.limit,
    }


def _listing(rows: list[RetrieverExecution], total: int, page: PageRequest, count_only: bool = False) -> dict[str, Any]:
    results = [] if count_only else [history.summary_view(r) for r in rows]
    return {"results": results, "total": total, "pagination": _page_metadata(page, total, len(results))}


@router.post("/executions/list", tags=["Adhoc Retrievers"])
def list_adhoc_executions(
    scope: ScopeDep, session: ReadDbDep, page: PageDep, request: ListAdhocExecutionsRequest | None = None
) -> dict[str, Any]:
    request = request or ListAdhocExecutionsRequest()
    rows, total = history.list_executions(
        session,
        scope,
        page,
        retriever_id=None,
        status=request.status,
        since=request.start_time,
        until=request.end_time,
    )
    return _listing(rows, total, page, request.count_only)


@router.get("/executions/{execution_id}", tags=["Adhoc Retrievers"])
def get_adhoc_execution(execution_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return history.detail_view(history.get_execution(session, scope, execution_id, adhoc=True))


@router.post("/{retriever_id}/executions/list")
def list_executions(
    retriever_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    page: PageDep,
    request: ListExecutionsRequest | None = None,
) -> dict[str, Any]:
    request = request or ListExecutionsRequest()
    retriever = get_retriever(session, scope, retriever_id)
    rows, total = history.list_executions(
        session,
        scope,
        page,
        retriever_id=retriever.retriever_id,
        status=request.status,
        filters=request.filters,
        sorts=request.sorts,
    )
    return _listing(rows, total, page)


def _saved(session: Any, scope: Any, retriever_id: str, execution_id: str) -> RetrieverExecution:
    retriever = get_retriever(session, scope, retriever_id)
    return history.get_execution(session, scope, execution_id, retriever_id=retriever.retriever_id)


@router.get("/{retriever_id}/executions/{execution_id}")
def get_execution(retriever_id: str, execution_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return history.detail_view(_saved(session, scope, retriever_id, execution_id))


@router.get("/{retriever_id}/executions/{execution_id}/profile")
def get_execution_profile(retriever_id: str, execution_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return history.profile_view(_saved(session, scope, retriever_id, execution_id))


@router.get("/{retriever_id}/executions/{execution_id}/status")
def get_execution_status(retriever_id: str, execution_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return history.status_view(_saved(session, scope, retriever_id, execution_id))


@router.post("/{retriever_id}/execute/explain")
def explain_execution(
    retriever_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    request: ExplainRetrieverRequest | None = None,
) -> dict[str, Any]:
    """The plan, without running anything: no query is embedded, no document read, nothing recorded."""
    return explain(session, runtime.index, scope, retriever_id, (request or ExplainRetrieverRequest()).inputs)


@router.post("/{retriever_id}/execute/batch")
def execute_batch(
    retriever_id: str,
    request: ExecuteBatchRequest,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    return_presigned_urls: bool = False,
    return_vectors: bool = False,
) -> dict[str, Any]:
    """Each query runs (in order) and is recorded like a single execute; one query's failure is
    reported in its place and does not stop the others."""
    retriever = get_retriever(session, scope, retriever_id)
    results: list[dict[str, Any]] = []
    for position, query in enumerate(request.queries):
        try:
            run = saved_execution(
                session,
                runtime.index,
                runtime.blobs,
                scope,
                retriever.retriever_id,
                batch_item_request(request, query),
                with_vectors=return_vectors,
                presign=return_presigned_urls,
            )
            results.append({"index": position, **history.run_recorded(run, recorder_for(runtime, scope, run))})
        except StrataflowError as exc:
            failure = error_body(exc.status_code, exc.message, exc.type, exc.details)
            # the envelope's `status` is the HTTP code; an item's status says whether it ran
            results.append({"index": position, **failure, "status": "failed", "status_code": exc.status_code})
    failed = sum(1 for r in results if r["status"] == "failed")
    return {
        "retriever_id": retriever.retriever_id,
        "results": results,
        "total": len(results),
        "succeeded": len(results) - failed,
        "failed": failed,
    }


@router.post("/{retriever_id}/clone")
def clone(retriever_id: str, request: CloneRetrieverRequest, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    row, source_id = clone_retriever(session, scope, retriever_id, request)
    return {"retriever": retriever_view(row), "source_retriever_id": source_id}
