"""Aggregating a bucket's objects: the records read from the database, the rest in the shared language.

The filters run in the database (where its indexes help), and each record holds only the
fields the request reads: a column, or a path into the object's metadata.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.aggregation_language import aggregate, check, stored_fields
from strataflow.clock import isoformat
from strataflow.errors import BadRequestError
from strataflow.schemas.objects import ObjectAggregationRequest
from strataflow.services.objects.crud import OBJECT_FIELDS
from strataflow.store.filters import compile_filters, resolve_field
from strataflow.store.tables import Bucket, BucketObject


def _plain(value: Any) -> Any:
    """JSON values come back as text on some databases: decoded when they are JSON. Times become
    ISO text, as a document's are, so min/max and date_trunc treat both alike."""
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _records(session: Session, bucket: Bucket, request: ObjectAggregationRequest) -> list[dict[str, Any]]:
    fields = stored_fields(request)
    targets = {field: resolve_field(field, OBJECT_FIELDS) for field in fields}
    if request.unwind is not None and not targets[request.unwind].path:
        raise BadRequestError(f"Cannot unwind '{request.unwind}': it is not an array field", {"unwind": request.unwind})
    query = (
        select(BucketObject.object_id, *[t.raw().label(f"f{i}") for i, t in enumerate(targets.values())])
        .where(BucketObject.bucket_id == bucket.bucket_id)
        .order_by(BucketObject.created_at, BucketObject.object_id)  # `first` and `last` follow it
    )
    clause = compile_filters(request.filters, OBJECT_FIELDS)
    if clause is not None:
        query = query.where(clause)
    return [{field: _plain(row[i + 1]) for i, field in enumerate(fields)} for row in session.execute(query)]


def aggregate_objects(session: Session, bucket: Bucket, request: ObjectAggregationRequest) -> dict[str, Any]:
    check(request)  # before reading anything
    records = _records(session, bucket, request)
    return aggregate(records, request, len(records))
