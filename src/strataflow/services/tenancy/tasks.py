"""Tasks: create, read, list and kill. Tasks are rows; they never expire."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from strataflow.clock import isoformat
from strataflow.errors import not_found
from strataflow.ids import new_id
from strataflow.schemas.tasks import ListTasksRequest
from strataflow.services.tenancy.auth import authenticate
from strataflow.statuses import Status, TaskType
from strataflow.store.db import Database
from strataflow.store.filters import FieldMap, compile_filters, sort_expression, text_search
from strataflow.store.pagination import Page, PageRequest, paginate
from strataflow.store.tables import Task
from strataflow.transitions import Verdict, create, try_transition

TASK_FIELDS = FieldMap(
    columns={
        "task_id": Task.task_id,
        "task_type": Task.task_type,
        "status": Task.status,
        "namespace_id": Task.namespace_id,
        "created_at": Task.created_at,
        "updated_at": Task.updated_at,
    },
    json_columns={"additional_data": Task.additional_data},
)

# Kill hooks: a task type whose work must be stopped elsewhere too (a batch task
# cancels its batch). The table is `runtime.KILL_HOOKS`; the caller passes it in.
KillHook = Callable[[Session, Task], None]


def create_task(
    session: Session,
    org_id: str,
    task_type: TaskType,
    *,
    namespace_id: str | None = None,
    inputs: list[Any] | None = None,
    additional_data: dict[str, Any] | None = None,
) -> Task:
    task = Task(
        task_id=new_id("task"),
        org_id=org_id,
        namespace_id=namespace_id,
        task_type=task_type.value,
        inputs=inputs,
        additional_data=additional_data or {},
    )
    create(session, task, Status.PENDING, "requested")
    session.flush()
    return task


def read_task_payload(db: Database, authorization: str | None, task_id: str) -> dict[str, Any]:
    """GET /v1/tasks/{id} in one read session: the caller's key, then the task, then its wire shape.

    Every SDK client polls this while it waits, so it is the server's most frequent request; one
    session (one pooled connection, one BEGIN) instead of one for the key and one for the task.
    """
    with db.read_session() as session:
        principal = authenticate(session, authorization)
        return task_payload(get_task(session, principal.org_id, task_id))


def get_task(session: Session, org_id: str, task_id: str) -> Task:
    task = session.scalar(select(Task).where(Task.task_id == task_id, Task.org_id == org_id))
    if task is None:
        raise not_found("Task", task_id)
    return task


def list_tasks(
    session: Session, org_id: str, namespace_id: str | None, request: ListTasksRequest, page: PageRequest
) -> Page:
    query = select(Task).where(Task.org_id == org_id)
    if namespace_id is not None:
        query = query.where(Task.namespace_id == namespace_id)
    if request.status is not None:
        query = query.where(Task.status == request.status.value)
    if request.task_type is not None:
        query = query.where(Task.task_type == request.task_type.value)
    clause = compile_filters(request.filters, TASK_FIELDS)
    if clause is not None:
        query = query.where(clause)
    if request.search:
        query = query.where(text_search(request.search, Task.task_id, Task.task_type, cast(Task.inputs, String)))
    if request.sort is not None:
        query = query.order_by(sort_expression(request.sort.field, request.sort.direction, TASK_FIELDS))
    query = query.order_by(Task.created_at.desc(), Task.task_id)
    return paginate(session, query, page)


def kill_task(session: Session, org_id: str, task_id: str, hooks: Mapping[str, KillHook]) -> bool:
    """Cancel a task. Idempotent: unknown or finished tasks are left as they are."""
    task = session.scalar(select(Task).where(Task.task_id == task_id, Task.org_id == org_id))
    if task is None or try_transition(session, task, Status.CANCELED, "killed through the API") is not Verdict.ACCEPTED:
        return False  # unknown, or already finished: nothing to stop
    hook = hooks.get(task.task_type)
    if hook is not None:
        hook(session, task)
    session.commit()
    return True


def task_payload(task: Task) -> dict[str, Any]:
    """The wire shape of a task."""
    data = dict(task.additional_data or {})
    if task.error and "error" not in data:
        data["error"] = task.error
    data.setdefault("created_at", _iso(task.created_at))
    data.setdefault("updated_at", _iso(task.updated_at))
    if task.namespace_id:
        data.setdefault("namespace_id", task.namespace_id)
    return {
        "task_id": task.task_id,
        "task_type": task.task_type,
        "status": task.status,
        "inputs": task.inputs,
        "outputs": task.outputs,
        "additional_data": data,
        "error": task.error,
    }


def _iso(value: Any) -> str | None:
    return isoformat(value)
