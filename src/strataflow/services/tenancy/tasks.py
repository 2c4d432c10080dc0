"""Tasks: create, read, list and kill. Tasks are rows; they never expire."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Row, String, bindparam, cast, select
from sqlalchemy.orm import Session

from strataflow.clock import isoformat
from strataflow.errors import not_found
from strataflow.ids import new_id
from strataflow.schemas.tasks import ListTasksRequest
from strataflow.services.tenancy.auth import authenticate, bearer_token, hash_key
from strataflow.statuses import Status, TaskType
from strataflow.store.db import Database
from strataflow.store.filters import FieldMap, compile_filters, sort_expression, text_search
from strataflow.store.pagination import Page, PageRequest, paginate
from strataflow.store.tables import ApiKey, Task
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


# GET /v1/tasks/{id} is every SDK client's wait loop, so the server's most frequent request. Its
# read is one statement, built once: the task's columns joined to the caller's live key, so the
# org check and the authentication are the same indexed read. Only when it finds nothing do the
# separate reads run, to tell a bad key (401) from an unknown or other org's task (404).
_TASK_COLUMNS = (
    Task.task_id,
    Task.task_type,
    Task.status,
    Task.inputs,
    Task.outputs,
    Task.additional_data,
    Task.error,
    Task.namespace_id,
    Task.created_at,
    Task.updated_at,
)
_TASK_FOR_KEY = (
    select(*_TASK_COLUMNS)
    .join(ApiKey, ApiKey.org_id == Task.org_id)
    .where(
        ApiKey.key_hash == bindparam("key_hash"),
        ApiKey.revoked_at.is_(None),
        Task.task_id == bindparam("task_id"),
    )
)


def read_task_payload(
    db: Database, authorization: str | None, task_id: str, *, on_event_loop: bool = False
) -> dict[str, Any]:
    """GET /v1/tasks/{id}: the caller's key and the task in one statement on one Core connection.

    A Core connection, not an ORM session, and columns, not the entity: on this path building the
    session and the entity cost more than the read (docs/performance.md, "Task polling").
    `on_event_loop` reads on `Database.event_loop_read_connection`, which raises `ReadWouldWait`
    rather than wait for a busy database.
    """
    token = bearer_token(authorization)  # a malformed header is a 401 before any read
    # One statement, so no transaction around it (on SQLite, no BEGIN: the statement is its own
    # snapshot). The fallback read is a statement of its own; it only decides which error to give.
    connect = db.event_loop_read_connection if on_event_loop else db.single_read_connection
    with connect() as connection:
        row = connection.execute(_TASK_FOR_KEY, {"key_hash": hash_key(token), "task_id": task_id}).first()
        if row is None:
            authenticate(connection, authorization)  # raises 401 for an unknown or revoked key
            raise not_found("Task", task_id)  # the key is good: the task is unknown or another org's
    return task_payload(row)


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


def task_payload(task: Task | Row[Any]) -> dict[str, Any]:
    """The wire shape of a task (an entity, or a row of `_TASK_COLUMNS`)."""
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
