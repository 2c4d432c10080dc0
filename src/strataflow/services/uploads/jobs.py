"""Confirm requests: inline or queued, batch confirm, and the background jobs behind them."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.engine.jobs import JobContext, JobOutcome
from strataflow.errors import BadRequestError
from strataflow.schemas.common import RequestModel
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.services.tenancy.tasks import create_task
from strataflow.services.uploads.confirm import (
    Claim,
    LeaseKeeper,
    check_matches,
    complete_upload,
    confirm_inline,
    confirm_payload,
    describe_error,
    load_for_confirm,
    mark_failed,
    refuse_unconfirmable,
    stored_info,
    verify_stored,
)
from strataflow.services.uploads.crud import get_upload
from strataflow.statuses import Status, TaskType
from strataflow.store.tables import Bucket, Task, Upload
from strataflow.transitions import Verdict, transition, try_transition


def confirm_upload(
    context: JobContext, scope: NamespaceScope, bucket: Bucket, upload_id: str, claim: Claim, want_async: bool
) -> tuple[dict[str, Any], bool]:
    """Confirm now, or queue it (asked for, or the file is large). Returns the answer and
    whether a task was queued. Cheap checks (exists, size, ETag) run first either way, so a
    wrong claim is refused at once and the upload stays confirmable."""
    row = load_for_confirm(context, bucket, upload_id)
    if row.status == Status.COMPLETED:
        return confirm_payload(row, "Upload already confirmed."), False
    refuse_unconfirmable(row)
    if row.status == Status.PROCESSING:
        return confirm_payload(row, f"Confirmation is running in task {row.task_id}."), False
    size = row.file_size_bytes or 0
    if row.multipart_id is None:
        info = stored_info(context.blobs, row, claim)
        check_matches(row, claim, info, context.settings.max_upload_bytes)
        size = info.size
    if want_async or size >= context.settings.upload_async_confirm_bytes:
        queued = queue_confirm(context, scope, bucket, upload_id, claim)
        return confirm_payload(queued), queued.status == Status.PROCESSING
    verified = verify_stored(context.blobs, row, claim, context.settings.max_upload_bytes)
    return confirm_payload(
        complete_upload(context, bucket.bucket_id, upload_id, verified, from_background=False)
    ), False


def queue_confirm(context: JobContext, scope: NamespaceScope, bucket: Bucket, upload_id: str, claim: Claim) -> Upload:
    with context.db.transaction() as session:
        row = get_upload(session, bucket, upload_id, for_update=True)
        if row.status != Status.PENDING:
            return row  # a concurrent confirm moved it on
        task = create_task(
            session,
            scope.org_id,
            TaskType.BUCKETS_UPLOADS_CONFIRM,
            namespace_id=scope.namespace_id,
            inputs=[{"bucket_id": bucket.bucket_id, "upload_id": upload_id, **claim.as_input()}],
        )
        transition(session, row, Status.PROCESSING, f"confirmation queued as task {task.task_id}")
        row.task_id = task.task_id
        row.message = "Confirmation is running in the background; poll the task."
    return row


def confirm_job(context: JobContext, task: Task) -> JobOutcome:
    spec = (task.inputs or [{}])[0]
    bucket_id, upload_id = spec["bucket_id"], spec["upload_id"]
    keeper = LeaseKeeper(context, task.task_id, task.lease_owner, task.fence_token)
    try:
        with context.db.read_session() as session:
            bucket = session.get(Bucket, bucket_id)
            if bucket is None:
                raise BadRequestError(f"The bucket of upload '{upload_id}' no longer exists")
            row = get_upload(session, bucket, upload_id)
        if row.status != Status.COMPLETED:
            if row.status != Status.PROCESSING:
                raise BadRequestError(f"Upload '{upload_id}' is {row.status}", {"upload_id": upload_id})
            verified = verify_stored(
                context.blobs, row, Claim.from_input(spec), context.settings.max_upload_bytes, keeper
            )
            row = complete_upload(context, bucket_id, upload_id, verified, from_background=True)
    except Exception as exc:  # noqa: BLE001  whatever went wrong, the upload must not stay PROCESSING
        message, kind = describe_error(exc)
        mark_failed(context, bucket_id, upload_id, message)
        return JobOutcome(
            status=Status.FAILED,
            error=message,
            outputs=[{"upload_id": upload_id, "status": Status.FAILED, "error": message, "error_type": kind}],
        )
    return JobOutcome(
        status=Status.COMPLETED,
        outputs=[confirm_payload(row)],
        additional_data={"upload_id": upload_id, "object_id": row.object_id},
    )


def fail_killed_confirm(session: Session, task: Task) -> None:
    spec = (task.inputs or [{}])[0]
    row = session.get(Upload, spec.get("upload_id"))
    if (
        row is not None
        and row.status == Status.PROCESSING
        and try_transition(session, row, Status.FAILED, f"confirmation task {task.task_id} was killed")
        is Verdict.ACCEPTED
    ):
        row.message = "Confirmation failed: its task was killed."


# -- batch confirm ----------------------------------------------------------------------


class BatchConfirmItem(RequestModel):
    upload_id: str = Field(pattern=r"^upl_[a-zA-Z0-9_-]+$", max_length=40)
    etag: str | None = Field(default=None, max_length=128)
    file_size_bytes: int | None = Field(default=None, ge=1)


def _parse_items(confirmations: list[dict[str, Any]]) -> list[BatchConfirmItem]:
    items = []
    for index, raw in enumerate(confirmations):
        try:
            items.append(BatchConfirmItem.model_validate(raw))
        except PydanticValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            raise BadRequestError(
                f"confirmations[{index}]{'.' + where if where else ''}: {err.get('msg')}", {"index": index}
            ) from None
    ids = [item.upload_id for item in items]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise BadRequestError(f"Uploads listed more than once: {', '.join(repeated)}", {"upload_ids": repeated})
    return items


def request_batch_confirm(
    context: JobContext, scope: NamespaceScope, bucket: Bucket, confirmations: list[dict[str, Any]]
) -> Task:
    """Check the whole request, then queue one task that confirms every item."""
    items = _parse_items(confirmations)
    ids = [item.upload_id for item in items]
    with context.db.transaction() as session:
        found = set(
            session.scalars(
                select(Upload.upload_id).where(Upload.bucket_id == bucket.bucket_id, Upload.upload_id.in_(ids))
            )
        )
        missing = [i for i in ids if i not in found]
        if missing:
            raise BadRequestError(
                f"{len(missing)} upload(s) do not belong to bucket '{bucket.bucket_name}': {', '.join(missing[:10])}",
                {"upload_ids": missing, "bucket_id": bucket.bucket_id},
            )
        inputs = [
            {
                "bucket_id": bucket.bucket_id,
                "upload_id": item.upload_id,
                "etag": item.etag,
                "file_size_bytes": item.file_size_bytes,
            }
            for item in items
        ]
        task = create_task(
            session,
            scope.org_id,
            TaskType.BUCKETS_UPLOADS_BATCH_CONFIRM,
            namespace_id=scope.namespace_id,
            inputs=inputs,
            additional_data={"bucket_id": bucket.bucket_id, "confirmations_count": len(items)},
        )
    return task


def batch_confirm_job(context: JobContext, task: Task) -> JobOutcome:
    """Confirm each item as a sync confirm would; one item's failure leaves the others alone.
    Re-running after a lost lease is harmless: confirmed uploads answer as they are."""
    keeper = LeaseKeeper(context, task.task_id, task.lease_owner, task.fence_token)
    outputs: list[dict[str, Any]] = []
    buckets: dict[str, Bucket | None] = {}
    for spec in task.inputs or []:
        bucket_id = spec["bucket_id"]
        if bucket_id not in buckets:
            with context.db.read_session() as session:
                buckets[bucket_id] = session.get(Bucket, bucket_id)
        try:
            bucket = buckets[bucket_id]
            if bucket is None:
                raise BadRequestError(f"Bucket '{bucket_id}' no longer exists")
            row = confirm_inline(context, bucket, spec["upload_id"], Claim.from_input(spec), keeper)
            outputs.append({**confirm_payload(row), "success": True})
        except Exception as exc:  # noqa: BLE001  reported per item; the batch goes on
            message, kind = describe_error(exc)
            outputs.append(
                {
                    "upload_id": spec["upload_id"],
                    "status": Status.FAILED,
                    "success": False,
                    "error": message,
                    "error_type": kind,
                }
            )
        keeper()
    failed = sum(1 for o in outputs if not o["success"])
    if failed == 0:
        status = Status.COMPLETED
    elif failed == len(outputs):
        status = Status.FAILED
    else:
        status = Status.COMPLETED_WITH_ERRORS
    summary = {"total": len(outputs), "succeeded": len(outputs) - failed, "failed": failed}
    error = f"All {failed} confirmations failed; see outputs" if status is Status.FAILED else None
    return JobOutcome(status=status, outputs=outputs, additional_data=summary, error=error)
