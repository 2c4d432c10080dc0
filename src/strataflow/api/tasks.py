"""Tasks: org-scoped; X-Namespace is tolerated and narrows lists."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from strataflow.api.deps import (
    AuthorizationDep,
    DbDep,
    OptionalScopeDep,
    PageDep,
    PrincipalDep,
    ReadDbDep,
    RuntimeDep,
)
from strataflow.runtime import KILL_HOOKS
from strataflow.schemas.common import ERROR_RESPONSES, GenericDeleteResponse
from strataflow.schemas.tasks import ListTasksRequest, ListTasksResponse, TaskResponse
from strataflow.services.tenancy import tasks as service
from strataflow.store.db import ReadWouldWait

log = logging.getLogger("strataflow.api.tasks")

router = APIRouter(prefix="/v1/tasks", tags=["Tasks"], responses=ERROR_RESPONSES)


@router.get("/{task_id}", response_model=TaskResponse)
async def get_task(task_id: str, runtime: RuntimeDep, authorization: AuthorizationDep = None) -> dict[str, Any]:
    # The polling path: the key and the task are read in one statement. On SQLite it runs right
    # here on the event loop (a local read that waits for no writer in WAL mode), since the trip to
    # the thread pool cost more than the read; a database busy at that moment is read from the
    # pool instead, where waiting holds up no other request. PostgreSQL's read is a round trip:
    # always the pool.
    db = runtime.db
    if db.reads_on_event_loop:
        try:
            return service.read_task_payload(db, authorization, task_id, on_event_loop=True)
        except ReadWouldWait:
            log.info("task read found the database busy; reading from the thread pool", extra={"task_id": task_id})
    return await run_in_threadpool(service.read_task_payload, db, authorization, task_id)


@router.post("/list", response_model=ListTasksResponse)
def list_tasks(
    principal: PrincipalDep,
    scope: OptionalScopeDep,
    session: ReadDbDep,
    page: PageDep,
    request: ListTasksRequest | None = None,
) -> dict[str, Any]:
    namespace_id = scope.namespace_id if scope else None
    result = service.list_tasks(session, principal.org_id, namespace_id, request or ListTasksRequest(), page)
    return {"results": [service.task_payload(t) for t in result.rows], "pagination": result.pagination}


@router.delete("/{task_id}", response_model=GenericDeleteResponse)
def kill_task(task_id: str, principal: PrincipalDep, session: DbDep) -> GenericDeleteResponse:
    killed = service.kill_task(session, principal.org_id, task_id, KILL_HOOKS)
    message = f"Task {task_id} canceled" if killed else f"Task {task_id} is not running; nothing to cancel"
    return GenericDeleteResponse(message=message, success=True)
