"""Retrievers: saved search pipelines, their execution, and ad-hoc execution (JSON or SSE)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from strataflow.api.deps import DbDep, PageDep, ReadDbDep, RuntimeDep, ScopeDep
from strataflow.api.errors import error_body
from strataflow.errors import StrataflowError
from strataflow.retrieval.pipeline import Execution
from strataflow.retrieval.vision_queries import VisionQueries
from strataflow.runtime import Runtime
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.retrievers import (
    AdhocExecuteRequest,
    CreateRetrieverRequest,
    ExecuteRetrieverRequest,
    ListRetrieversRequest,
    PatchRetrieverRequest,
)
from strataflow.services.retrievers import crud as service
from strataflow.services.retrievers import execution
from strataflow.services.retrievers.answer import AnswerOptions, answer_options
from strataflow.services.retrievers.history import ExecutionRecorder, recorded_steps
from strataflow.services.tenancy.scope import NamespaceScope

log = logging.getLogger("strataflow.retrievers")
router = APIRouter(prefix="/v1/retrievers", tags=["Retrievers"], responses=ERROR_RESPONSES)


@router.post("")
def create_retriever(request: CreateRetrieverRequest, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    view = service.retriever_view(service.create_retriever(session, scope, request))
    return {**view, "retriever": view}  # the spec wraps it, the SDK reads it bare: both


@router.post("/list")
def list_retrievers(
    scope: ScopeDep, session: ReadDbDep, page: PageDep, request: ListRetrieversRequest | None = None
) -> dict[str, Any]:
    result, total = service.list_retrievers(session, scope, request or ListRetrieversRequest(), page)
    return {
        "results": [service.retriever_view(r) for r in result.rows],
        "total": total,
        "pagination": result.pagination,
    }


@router.get("")
def list_retrievers_get(scope: ScopeDep, session: ReadDbDep, page: PageDep) -> dict[str, Any]:
    return list_retrievers(scope, session, page, None)


@router.post("/execute")
def execute_adhoc(
    request: AdhocExecuteRequest,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    return_presigned_urls: bool = False,
    return_vectors: bool = False,
    explain: bool = False,
) -> Any:
    run = execution.adhoc_execution(
        session,
        runtime.index,
        runtime.blobs,
        scope,
        request,
        with_vectors=return_vectors,
        presign=return_presigned_urls,
        vision=_vision(runtime),
    )
    options = answer_options(session, runtime.db, runtime.index, scope, run, request, explain=explain, blobs=run.blobs)
    return _answer(run, recorder_for(runtime, scope, run), request.stream, options)


@router.get("/{retriever_id}")
def get_retriever(retriever_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return service.retriever_view(service.get_retriever(session, scope, retriever_id))


@router.patch("/{retriever_id}")
def patch_retriever(
    retriever_id: str, request: PatchRetrieverRequest, scope: ScopeDep, session: DbDep
) -> dict[str, Any]:
    view = service.retriever_view(service.patch_retriever(session, scope, retriever_id, request))
    return {**view, "retriever": view}


@router.delete("/{retriever_id}")
def delete_retriever(retriever_id: str, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    deleted = service.delete_retriever(session, scope, retriever_id)
    return {"success": True, "message": f"Retriever {deleted} deleted", "retriever_id": deleted}


@router.post("/{retriever_id}/execute")
def execute_retriever(
    retriever_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    request: ExecuteRetrieverRequest | None = None,
    return_presigned_urls: bool = False,
    return_vectors: bool = False,
    explain: bool = False,
) -> Any:
    request = request or ExecuteRetrieverRequest()
    run = execution.saved_execution(
        session,
        runtime.index,
        runtime.blobs,
        scope,
        retriever_id,
        request,
        with_vectors=return_vectors,
        presign=return_presigned_urls,
        vision=_vision(runtime),
    )
    options = answer_options(session, runtime.db, runtime.index, scope, run, request, explain=explain, blobs=run.blobs)
    return _answer(run, recorder_for(runtime, scope, run), request.stream, options)


def recorder_for(runtime: Runtime, scope: NamespaceScope, run: Execution) -> ExecutionRecorder:
    return ExecutionRecorder(
        runtime.db, scope, runtime.settings, run.retriever_id, [c.collection_id for c in run.collections]
    )


def _answer(run: Execution, recorder: ExecutionRecorder, stream: bool, options: AnswerOptions) -> Any:
    """The run as JSON or as server-sent events; its result finished with what the request asked."""

    def steps() -> Iterator[dict[str, Any]]:
        for event in recorded_steps(run, recorder):
            if event["event"] == "execution_complete":
                options.finish(run, event["result"])
            yield event

    if stream:
        return _stream(run, steps())
    result: dict[str, Any] = {}
    for event in steps():
        if event["event"] == "execution_complete":
            result = event["result"]
    return result


def _vision(runtime: Runtime) -> VisionQueries:
    """Query encoding for vision features: this server's models, device and outbound guard."""
    settings = runtime.settings
    return VisionQueries(
        settings.models_dir, settings.device, runtime.outbound, settings.image_max_pixels, settings.image_max_frames
    )


def _sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event, default=str)}\n\n"


def _stream(run: Execution, steps: Iterator[dict[str, Any]]) -> StreamingResponse:
    """Server-sent events; a failure after the stream began becomes an execution_error event."""

    def events() -> Iterator[str]:
        try:
            for event in steps:
                yield _sse(event)
        except StrataflowError as exc:
            yield _sse(
                {
                    "event": "execution_error",
                    "execution_id": run.execution_id,
                    **error_body(exc.status_code, exc.message, exc.type, exc.details),
                }
            )
        except Exception:
            log.exception("retriever execution %s failed", run.execution_id)
            yield _sse(
                {
                    "event": "execution_error",
                    "execution_id": run.execution_id,
                    **error_body(500, "Internal server error", "InternalServerError"),
                }
            )

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
