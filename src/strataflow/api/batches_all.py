"""Batches across buckets: the namespace's (or organization's) batches, one by id, the queue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from strataflow.api.deps import DbDep, OptionalScopeDep, PrincipalDep, ReadDbDep, RuntimeDep
from strataflow.engine.lifecycle import cancel as cancellation
from strataflow.schemas.batches import BatchModel, ListAllBatchesRequest, ListBatchesResponse
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.tasks import TaskResponse
from strataflow.services.batches import across
from strataflow.services.batches.queue import queue_context, queue_status
from strataflow.services.batches.view import batch_payload
from strataflow.services.tenancy.tasks import task_payload

router = APIRouter(prefix="/v1/batches", tags=["Batches"], responses=ERROR_RESPONSES)


@router.post("/list", response_model=ListBatchesResponse)
def list_all_batches(
    principal: PrincipalDep,
    namespace: OptionalScopeDep,
    session: ReadDbDep,
    request: ListAllBatchesRequest | None = None,
) -> dict[str, Any]:
    """Every batch of the namespace (X-Namespace or `namespace_id`), or of the organization without one."""
    rows, total, pagination = across.list_all_batches(session, principal, namespace, request or ListAllBatchesRequest())
    return {"results": [batch_payload(session, b) for b in rows], "total_count": total, "pagination": pagination}


@router.get("/queue")
def batch_queue(
    principal: PrincipalDep, namespace: OptionalScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """What waits for a worker and what runs where, with positions and a wait estimate from measured throughput."""
    namespace_id = namespace.namespace_id if namespace else None
    return queue_status(session, principal.org_id, namespace_id, runtime.settings.scheduler_workers)


@router.get("/{batch_id}", response_model=BatchModel)
def get_batch_by_id(
    batch_id: str, principal: PrincipalDep, namespace: OptionalScopeDep, session: ReadDbDep
) -> dict[str, Any]:
    batch = across.batch_by_id(session, principal, namespace, batch_id)
    return {**batch_payload(session, batch), "queue_context": queue_context(session, batch)}


@router.post("/{batch_id}/cancel", response_model=TaskResponse)
def cancel_batch_by_id(
    batch_id: str, principal: PrincipalDep, namespace: OptionalScopeDep, session: DbDep, reason: str | None = None
) -> dict[str, Any]:
    batch = across.batch_by_id(session, principal, namespace, batch_id, for_update=True)
    return task_payload(cancellation.cancel_loaded(session, batch, reason))
