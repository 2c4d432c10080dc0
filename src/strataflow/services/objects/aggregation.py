"""Group-by aggregation over bucket objects, computed by the database."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Float, cast, func, select
from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError
from strataflow.schemas.objects import ObjectAggregationRequest
from strataflow.services.objects.crud import OBJECT_FIELDS
from strataflow.store.filters import compile_filters, resolve_field
from strataflow.store.tables import Bucket, BucketObject

_NUMERIC = {"sum", "avg"}
_SUPPORTED = {"count", "count_distinct", "sum", "avg", "min", "max"}


def _metric(function: str, field: str | None) -> Any:
    if function == "count":
        return func.count()
    if not field:
        raise BadRequestError(f"Aggregation '{function}' needs a field", {"function": function})
    target = resolve_field(field, OBJECT_FIELDS)
    if function in _NUMERIC:
        expr = cast(target.as_type(0.0), Float) if target.path else target.column
        return func.sum(expr) if function == "sum" else func.avg(expr)
    if function == "count_distinct":
        return func.count(func.distinct(target.as_type("")))
    column = target.as_type(0.0) if target.path else target.column
    return func.min(column) if function == "min" else func.max(column)


def aggregate_objects(session: Session, bucket: Bucket, request: ObjectAggregationRequest) -> dict[str, Any]:
    started = time.perf_counter()
    groups: list[tuple[str, Any]] = []
    for spec in request.group_by:
        field = spec.get("field")
        if not isinstance(field, str) or not field:
            raise BadRequestError("Each group_by entry needs a 'field'")
        if spec.get("date_trunc") or spec.get("date_part"):
            raise BadRequestError("date_trunc and date_part grouping are not supported yet", {"field": field})
        groups.append((spec.get("alias") or field, resolve_field(field, OBJECT_FIELDS).raw()))
    metrics: list[tuple[str, Any]] = []
    for op in request.aggregations:
        function = str(op.get("function", "")).lower()
        if function not in _SUPPORTED:
            raise BadRequestError(f"Unsupported aggregation function '{function}'", {"supported": sorted(_SUPPORTED)})
        alias = op.get("alias") or (f"{function}_{op['field']}" if op.get("field") else function)
        metrics.append((alias, _metric(function, op.get("field"))))
    query = select(
        *[g.label(f"g{i}") for i, (_, g) in enumerate(groups)], *[m.label(f"m{i}") for i, (_, m) in enumerate(metrics)]
    )
    query = query.where(BucketObject.bucket_id == bucket.bucket_id)
    clause = compile_filters(request.filters, OBJECT_FIELDS)
    if clause is not None:
        query = query.where(clause)
    query = query.group_by(*[g for _, g in groups])
    results = []
    for row in session.execute(query):
        values = list(row)
        group = {name: _plain(values[i]) for i, (name, _) in enumerate(groups)}
        metric_values = {name: values[len(groups) + i] for i, (name, _) in enumerate(metrics)}
        results.append({"group": group, "metrics": metric_values})
    if request.sort_by:
        reverse = request.sort_direction.lower() == "desc"
        sort_by = request.sort_by
        results.sort(key=lambda r: _sort_key(r["metrics"].get(sort_by, r["group"].get(sort_by))), reverse=reverse)
    if request.limit:
        results = results[: request.limit]
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    return {"results": results, "total_groups": len(results), "query_info": {"execution_time_ms": elapsed}}


def _plain(value: Any) -> Any:
    """JSON values come back as text on some databases; decode them when they are JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))
