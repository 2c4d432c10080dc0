"""Canceling a batch: through its endpoint, or by killing its task or one of its tier tasks."""

from __future__ import annotations

from sqlalchemy.orm import Session

from strataflow.engine.lifecycle import progress as lifecycle
from strataflow.errors import BadRequestError
from strataflow.services.batches.crud import get_batch
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Batch, Bucket, Task


def cancel_batch(session: Session, scope: NamespaceScope, bucket: Bucket, batch_id: str, reason: str | None) -> Task:
    return cancel_loaded(session, get_batch(session, scope, bucket, batch_id, for_update=True), reason)


def cancel_loaded(session: Session, batch: Batch, reason: str | None) -> Task:
    """Cancel a batch the caller has found (and locked); a finished batch's task comes back unchanged."""
    if batch.task_id is None:
        raise BadRequestError("This batch was never submitted; delete it instead", {"status": batch.status})
    lifecycle.cancel(session, batch, reason or "canceled through the API")
    session.commit()
    task = session.get(Task, batch.task_id)
    assert task is not None
    return task


def cancel_from_task(session: Session, task: Task) -> None:
    """Killing a batch's task (or one of its tier tasks) cancels the whole batch."""
    batch_id = (task.additional_data or {}).get("batch_id")
    batch = lifecycle.lock_batch(session, batch_id) if batch_id else None
    if batch is not None:
        lifecycle.cancel(session, batch, f"task {task.task_id} killed through the API")
