"""Removing what a batch wrote: every document its objects have in its collections, as a task.

The request opens the task; a job runner removes the documents (and the files their extractors
made), collection by collection, in chunks of objects, recording its progress on the task. A
repeated removal finds nothing left, so a job that is taken over (or run twice) is harmless.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from strataflow.engine.jobs import JobContext, JobOutcome, extend_lease
from strataflow.engine.lifecycle import progress as lifecycle
from strataflow.errors import BadRequestError, ConflictError
from strataflow.index.store import DocumentIndex
from strataflow.services.batches.crud import get_batch
from strataflow.services.batches.members import member_ids
from strataflow.services.buckets.documents import remove_documents_of_objects
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import TERMINAL, Status, TaskType
from strataflow.store.tables import Batch, Bucket, Task

log = logging.getLogger("strataflow.purge")
_OBJECTS_PER_STEP = 500


def request_document_removal(session: Session, scope: NamespaceScope, bucket: Bucket, batch_id: str) -> Task:
    batch = get_batch(session, scope, bucket, batch_id, for_update=True)
    if batch.status == Status.DRAFT:
        raise BadRequestError(f"Batch {batch_id} is a DRAFT and has written nothing", {"status": batch.status})
    if batch.status not in TERMINAL:
        raise ConflictError(
            f"Batch {batch_id} is {batch.status}; remove its documents once it has finished (or cancel it)",
            {"status": batch.status},
        )
    task = lifecycle.open_task(
        session,
        batch,
        TaskType.COLLECTIONS_DOCUMENTS_BULK_DELETE,
        {"collection_ids": batch.collection_ids or [], "object_count": batch.object_count, "documents_deleted": 0},
    )
    session.commit()
    return task


def remove_batch_documents_job(context: JobContext, task: Task) -> JobOutcome:
    index: DocumentIndex = context.services["index"]
    batch_id = str((task.additional_data or {}).get("batch_id"))
    with context.db.read_session() as session:
        batch = session.get(Batch, batch_id)
        if batch is None:
            return JobOutcome(Status.FAILED, error=f"batch {batch_id} no longer exists")
        collections = list(batch.collection_ids or [])
        objects = member_ids(session, batch_id)
    removed = 0
    for start in range(0, len(objects), _OBJECTS_PER_STEP):
        removed += remove_documents_of_objects(
            index, context.blobs, collections, objects[start : start + _OBJECTS_PER_STEP]
        )
        extend_lease(context.db, task.task_id, task.lease_owner, task.fence_token)
    log.info("batch documents removed", extra={"batch_id": batch_id, "documents": removed})
    return JobOutcome(
        Status.COMPLETED,
        additional_data={"documents_deleted": removed, "collection_ids": collections, "objects": len(objects)},
    )
