"""Batches across buckets: list them over a namespace (or the whole organization), read one by id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, String, cast, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from strataflow.errors import BadRequestError, not_found
from strataflow.schemas.batches import ListAllBatchesRequest, ListBatchesRequest
from strataflow.services.tenancy.namespaces import get_namespace
from strataflow.services.tenancy.scope import NamespaceScope, Principal
from strataflow.store.pagination import decode_cursor, encode_cursor
from strataflow.store.tables import Batch, Bucket

SORTABLE = {
    "created_at": Batch.created_at,
    "updated_at": Batch.updated_at,
    "status": Batch.status,
    "object_count": Batch.object_count,
}


def namespace_filter(
    session: Session, principal: Principal, header: NamespaceScope | None, requested: str | None
) -> str | None:
    """The namespace to narrow to (None: the whole organization). Header and body must agree."""
    if requested is None:
        return header.namespace_id if header else None
    namespace_id = get_namespace(session, principal, requested).namespace_id
    if header is not None and header.namespace_id != namespace_id:
        raise BadRequestError(
            "namespace_id in the body names another namespace than the X-Namespace header",
            {"namespace_id": requested, "x_namespace": header.namespace_name},
        )
    return namespace_id


def _contains_id(column: Any, value: str) -> ColumnElement[bool]:
    """Whether a JSON list column holds this id (its text form holds it quoted; LIKE's wildcards escaped)."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return cast(column, String).like(f'%"{escaped}"%', escape="\\")


def filtered(query: Select[Batch], request: ListBatchesRequest) -> Select[Batch]:
    """The status, bucket (id or name) and collection (one of the planned tiers runs it) filters."""
    if request.status is not None:
        query = query.where(Batch.status == request.status.value)
    if request.bucket_id is not None:
        buckets = select(Bucket.bucket_id).where(
            or_(Bucket.bucket_id == request.bucket_id, Bucket.bucket_name == request.bucket_id)
        )
        query = query.where(Batch.bucket_id.in_(buckets))
    if request.collection_id is not None:
        query = query.where(_contains_id(Batch.collection_ids, request.collection_id))
    return query


def paged(
    session: Session,
    query: Select[Batch],
    request: ListBatchesRequest,
    sort_by: str = "created_at",
    sort_direction: str = "desc",
) -> tuple[list[Batch], int, dict[str, Any]]:
    """One page (from `cursor`, else `offset`), the total, and the pagination block with `next_cursor`."""
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    column = SORTABLE[sort_by]
    order = column.asc() if sort_direction == "asc" else column.desc()
    start = decode_cursor(request.cursor) if request.cursor else request.offset
    rows = list(session.scalars(query.order_by(order, Batch.batch_id).offset(start).limit(request.limit + 1)))
    more = len(rows) > request.limit
    pagination = {
        "offset": start,
        "limit": request.limit,
        "total": total,
        "has_more": more,
        "next_cursor": encode_cursor(start + request.limit) if more else None,
        "sort_by": sort_by,
        "sort_direction": sort_direction,
    }
    return rows[: request.limit], total, pagination


def list_all_batches(
    session: Session, principal: Principal, header: NamespaceScope | None, request: ListAllBatchesRequest
) -> tuple[list[Batch], int, dict[str, Any]]:
    query = select(Batch).where(Batch.org_id == principal.org_id)
    namespace_id = namespace_filter(session, principal, header, request.namespace_id)
    if namespace_id is not None:
        query = query.where(Batch.namespace_id == namespace_id)
    return paged(session, filtered(query, request), request, request.sort_by, request.sort_direction)


def batch_by_id(
    session: Session, principal: Principal, header: NamespaceScope | None, batch_id: str, *, for_update: bool = False
) -> Batch:
    """A batch of the caller's organization (of the X-Namespace namespace, when sent); 404 otherwise."""
    query = select(Batch).where(Batch.batch_id == batch_id, Batch.org_id == principal.org_id)
    if header is not None:
        query = query.where(Batch.namespace_id == header.namespace_id)
    if for_update and session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    batch = session.scalar(query)
    if batch is None:
        raise not_found("Batch", batch_id)
    return batch
