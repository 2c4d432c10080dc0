"""Buckets: schema-typed containers of objects inside a namespace."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.blobs.multipart import abort_parts
from strataflow.engine.jobs import JobContext, JobOutcome
from strataflow.errors import AlreadyExistsError, BadRequestError, not_found
from strataflow.ids import looks_like, new_id
from strataflow.schemas.buckets import BucketCreateRequest, BucketUpdateRequest, ListBucketsRequest
from strataflow.services.buckets.documents import namespace_collection_ids, remove_documents_of_objects
from strataflow.services.buckets.schema import check_unique_key, normalize_schema
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.services.tenancy.tasks import create_task
from strataflow.statuses import Status, TaskType
from strataflow.store.db import deleted_rows
from strataflow.store.filters import FieldMap
from strataflow.store.pagination import ListQuery, Page, PageRequest, list_page
from strataflow.store.tables import Bucket, BucketObject, Task, Upload
from strataflow.transitions import create, transition

BUCKET_FIELDS = FieldMap(
    columns={
        "bucket_id": Bucket.bucket_id,
        "bucket_name": Bucket.bucket_name,
        "description": Bucket.description,
        "status": Bucket.status,
        "created_at": Bucket.created_at,
        "updated_at": Bucket.updated_at,
    },
    json_columns={"metadata": Bucket.metadata_},
)


def _visible(scope: NamespaceScope) -> Any:
    return (Bucket.namespace_id == scope.namespace_id) & (Bucket.status != Status.ARCHIVED)


def get_bucket(session: Session, scope: NamespaceScope, identifier: str) -> Bucket:
    row = session.scalar(select(Bucket).where(_visible(scope), Bucket.bucket_id == identifier))
    if row is None:
        row = session.scalar(select(Bucket).where(_visible(scope), Bucket.bucket_name == identifier))
    if row is None:
        raise not_found("Bucket", identifier)
    return row


def _check_name_free(session: Session, scope: NamespaceScope, name: str, except_id: str | None = None) -> None:
    if looks_like("bucket", name):
        raise BadRequestError("Bucket names may not start with 'bkt_' (that prefix marks ids)")
    existing = session.scalar(
        select(Bucket.bucket_id).where(Bucket.namespace_id == scope.namespace_id, Bucket.bucket_name == name)
    )
    if existing is not None and existing != except_id:
        raise AlreadyExistsError(f"Bucket '{name}' already exists in this namespace", {"bucket_name": name})


def create_bucket(session: Session, scope: NamespaceScope, request: BucketCreateRequest) -> Bucket:
    _check_name_free(session, scope, request.bucket_name)
    schema = normalize_schema(request.bucket_schema)
    row = Bucket(
        bucket_id=new_id("bucket"),
        namespace_id=scope.namespace_id,
        bucket_name=request.bucket_name,
        description=request.description,
        bucket_schema=schema,
        unique_key=check_unique_key(request.unique_key, schema),
        metadata_=request.metadata,
    )
    create(session, row, Status.ACTIVE, "created")
    session.commit()
    return row


def update_bucket(
    session: Session, scope: NamespaceScope, identifier: str, request: BucketUpdateRequest, *, replace: bool
) -> Bucket:
    """PUT (`replace`) sets every field it names; PATCH changes only the fields sent."""
    row = get_bucket(session, scope, identifier)
    changes = request.model_dump(exclude_unset=not replace)
    if changes.get("bucket_name") is not None:
        _check_name_free(session, scope, changes["bucket_name"], row.bucket_id)
        row.bucket_name = changes["bucket_name"]
    if "description" in changes:
        row.description = changes["description"]
    if changes.get("metadata") is not None:
        row.metadata_ = changes["metadata"]
    session.commit()
    return row


def list_buckets(
    session: Session, scope: NamespaceScope, request: ListBucketsRequest, page: PageRequest
) -> tuple[Page, int]:
    return list_page(
        session,
        select(Bucket).where(_visible(scope)),
        BUCKET_FIELDS,
        ListQuery.of(request),
        search_columns=(Bucket.bucket_name, Bucket.bucket_id, Bucket.description),
        tie_break=(Bucket.created_at.desc(), Bucket.bucket_id),
        page=page,
    )


def bucket_stats(session: Session, bucket_ids: list[str]) -> dict[str, dict[str, int]]:
    """Object count and byte totals per bucket, in one query."""
    stats = {bid: {"object_count": 0, "total_size_bytes": 0, "max": 0, "min": 0} for bid in bucket_ids}
    if not bucket_ids:
        return stats
    query = (
        select(
            BucketObject.bucket_id,
            func.count(),
            func.coalesce(func.sum(BucketObject.size_bytes), 0),
            func.coalesce(func.max(BucketObject.size_bytes), 0),
            func.coalesce(func.min(BucketObject.size_bytes), 0),
        )
        .where(BucketObject.bucket_id.in_(bucket_ids))
        .group_by(BucketObject.bucket_id)
    )
    for bucket_id, count, total, largest, smallest in session.execute(query):
        stats[bucket_id] = {
            "object_count": count,
            "total_size_bytes": int(total),
            "max": int(largest),
            "min": int(smallest),
        }
    return stats


def request_bucket_deletion(session: Session, scope: NamespaceScope, identifier: str) -> Task:
    """Hide the bucket at once and queue the task that removes objects and blobs."""
    row = get_bucket(session, scope, identifier)
    transition(session, row, Status.ARCHIVED, "deletion requested")
    task = create_task(
        session,
        scope.org_id,
        TaskType.BUCKETS_DELETE,
        namespace_id=scope.namespace_id,
        inputs=[{"bucket_id": row.bucket_id, "bucket_name": row.bucket_name}],
    )
    session.commit()
    return task


def bucket_upload_keys(session: Session, bucket_id: str) -> list[tuple[str, str | None]]:
    """Storage key and open multipart id of each of a bucket's uploads."""
    rows = session.execute(select(Upload.s3_key, Upload.multipart_id).where(Upload.bucket_id == bucket_id)).all()
    return [(key, multipart_id) for key, multipart_id in rows]


def delete_upload_bytes(store: BlobStore, keys: list[tuple[str, str | None]]) -> int:
    """Remove the bytes of uploads (they live outside the bucket's own prefix). Blob-store calls
    only: run it with no transaction open."""
    for key, multipart_id in keys:
        abort_parts(store, key, multipart_id)
        store.delete(key)
    return len(keys)


def delete_bucket_job(context: JobContext, task: Task) -> JobOutcome:
    bucket_id = (task.inputs or [{}])[0]["bucket_id"]
    # Bytes first, each store call outside any transaction (S3 may be slow); then the rows.
    with context.db.read_session() as session:
        upload_keys = bucket_upload_keys(session, bucket_id)
    blobs = context.blobs.delete_prefix(f"{task.namespace_id}/{bucket_id}/")
    blobs += delete_upload_bytes(context.blobs, upload_keys)
    with context.db.transaction() as session:
        object_ids = list(session.scalars(select(BucketObject.object_id).where(BucketObject.bucket_id == bucket_id)))
        objects = deleted_rows(session, delete(BucketObject).where(BucketObject.bucket_id == bucket_id))
        session.execute(delete(Bucket).where(Bucket.bucket_id == bucket_id))
        collection_ids = namespace_collection_ids(session, task.namespace_id or "")
    index = context.services.get("index")
    if index is not None:  # the objects' documents in every collection go with them
        for start in range(0, len(object_ids), 500):
            remove_documents_of_objects(index, context.blobs, collection_ids, object_ids[start : start + 500])
    return JobOutcome(
        status=Status.COMPLETED,
        outputs=[{"bucket_id": bucket_id, "objects_deleted": objects, "blobs_deleted": blobs}],
    )
