"""The aggregation language documents and objects share: unwind, group, bucket, compute, keep.

The steps run in the order a reader expects from SQL or a Mongo pipeline: `unwind` turns one
record holding an array into one row per element (as Mongo's `$unwind`: a missing or empty
array yields no row, a single value yields one; a field under the unwound path is read from
the element); each row is keyed by its `group_by` values (optionally a date truncated or a
date part) and its `range_buckets` labels; each group's `aggregations` are computed;
`having` keeps the groups whose metrics pass; then `sort_by` and `limit`.

A store reads the records: one dict per matching item, oldest first (`first` and `last`
follow that order), holding the value of every field `stored_fields` names. Filters are
the store's to apply, where they can use its indexes.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from strataflow.errors import BadRequestError
from strataflow.paths import value_at
from strataflow.schemas.aggregation import AggregationOperation, AggregationRequest, HavingCondition, RangeBucket

_FUNCTIONS = ("count", "count_distinct", "sum", "avg", "min", "max", "first", "last", "push", "add_to_set")
_HAVING: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
}
_TRUNC = ("year", "month", "week", "day", "hour", "minute", "second")
_PARTS = ("year", "month", "week", "day", "dayOfWeek", "dayOfYear", "hour", "minute", "second")


def decode(text: str | None) -> Any:
    """A JSON text as extracted from the payload, as its value (a bare string stays itself)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _inside(unwind: str | None, field: str) -> tuple[str, ...] | None:
    """The path inside each element when `field` is the unwound array or under it."""
    if unwind is None:
        return None
    if field == unwind:
        return ()
    if field.startswith(unwind + "."):
        return tuple(field[len(unwind) + 1 :].split("."))
    return None


def stored_fields(request: AggregationRequest) -> list[str]:
    """The fields a store reads for the request: each outside the unwound array, and the array."""
    read = [g.field for g in request.group_by] + [b.field for b in request.range_buckets or []]
    read += [f for op in request.aggregations if (f := _read_field(op))]
    outside = [f for f in read if _inside(request.unwind, f) is None]
    return list(dict.fromkeys([*outside, *([request.unwind] if request.unwind else [])]))


def _unwound(records: list[dict[str, Any]], request: AggregationRequest) -> list[dict[str, Any]]:
    unwind = request.unwind
    if unwind is None:
        return records
    inner = {f: path for f in _all_fields(request) if (path := _inside(unwind, f)) is not None}
    rows = []
    for record in records:
        array = record.get(unwind)
        for element in array if isinstance(array, list) else [] if array is None else [array]:
            rows.append({**record, **{f: value_at(element, path) for f, path in inner.items()}})
    return rows


def _all_fields(request: AggregationRequest) -> list[str]:
    read = [g.field for g in request.group_by] + [b.field for b in request.range_buckets or []]
    return read + [f for op in request.aggregations if (f := _read_field(op))]


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _truncate(value: Any, unit: str) -> str | None:
    moment = _instant(value)
    if moment is None:
        return None
    if unit == "week":  # ISO weeks start on Monday
        moment = (moment - timedelta(days=moment.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    else:  # every field finer than the unit goes back to its start
        finer = ("month", "day", "hour", "minute", "second", "microsecond")
        keep = ("year", "month", "day", "hour", "minute", "second").index(unit)
        starts = {name: 1 if name in ("month", "day") else 0 for name in finer[keep:]}
        moment = moment.replace(
            month=starts.get("month", moment.month),
            day=starts.get("day", moment.day),
            hour=starts.get("hour", moment.hour),
            minute=starts.get("minute", moment.minute),
            second=starts.get("second", moment.second),
            microsecond=starts.get("microsecond", moment.microsecond),
        )
    return moment.isoformat()


def _part(value: Any, unit: str) -> int | None:
    moment = _instant(value)
    if moment is None:
        return None
    if unit == "week":
        return moment.isocalendar().week
    if unit == "dayOfWeek":  # 1 = Sunday ... 7 = Saturday, as Mongo's $dayOfWeek
        return moment.isoweekday() % 7 + 1
    if unit == "dayOfYear":
        return moment.timetuple().tm_yday
    return int(getattr(moment, unit))


def _label(value: Any, bucket: RangeBucket) -> str:
    """The range a number falls in, as 'low-high' ('<min' and '>max' outside, unless a default_bucket
    names those); a value on a boundary goes into the lower range."""
    other = bucket.default_bucket or "other"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return other
    bounds = bucket.boundaries
    if value <= bounds[0]:
        return bucket.default_bucket or f"<{bounds[0]:g}"
    for low, high in itertools.pairwise(bounds):
        if value <= high:
            return f"{low:g}-{high:g}"
    return bucket.default_bucket or f">{bounds[-1]:g}"


def _metric(function: str, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if function == "count":
        return len(values)
    if function == "count_distinct":
        return len({json.dumps(v, sort_keys=True) for v in present})
    if function in ("first", "last"):
        return (present[0] if function == "first" else present[-1]) if present else None
    if function == "push":
        return present
    if function == "add_to_set":
        return list({json.dumps(v, sort_keys=True, default=str): v for v in present}.values())
    numbers = [float(v) for v in present if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if function == "sum":
        return sum(numbers)
    if function == "avg":
        return sum(numbers) / len(numbers) if numbers else None
    comparable: list[Any] = list(numbers) or [v for v in present if isinstance(v, str)]
    if not comparable:
        return None
    return min(comparable) if function == "min" else max(comparable)


def _group_of(row: dict[str, Any], request: AggregationRequest) -> dict[str, Any]:
    group: dict[str, Any] = {}
    for spec in request.group_by:
        value = row.get(spec.field)
        if spec.date_trunc:
            value = _truncate(value, spec.date_trunc)
        elif spec.date_part:
            value = _part(value, spec.date_part)
        group[spec.alias or spec.field] = value
    for bucket in request.range_buckets or []:
        group[bucket.field] = _label(row.get(bucket.field), bucket)
    return group


def _passes(metrics: dict[str, Any], conditions: list[HavingCondition]) -> bool:
    for condition in conditions:
        value = metrics.get(condition.field)
        try:
            if value is None or not _HAVING[condition.operator](value, condition.value):
                return False
        except TypeError:  # a number against a text: the group does not qualify
            return False
    return True


def check(request: AggregationRequest) -> None:
    aliases = [op.alias for op in request.aggregations]
    for op in request.aggregations:
        if op.function not in _FUNCTIONS:
            raise BadRequestError(f"Unsupported aggregation function '{op.function}'", {"supported": list(_FUNCTIONS)})
        if op.function != "count" and not _read_field(op):
            raise BadRequestError(f"Aggregation '{op.function}' needs a field", {"function": op.function})
    for condition in request.having or []:
        if condition.field not in aliases:
            raise BadRequestError(
                f"having names '{condition.field}', which is not an aggregation alias", {"aliases": aliases}
            )
        if condition.operator not in _HAVING:
            raise BadRequestError(f"Unsupported having operator '{condition.operator}'", {"supported": list(_HAVING)})
    for spec in request.group_by:
        if spec.date_trunc and spec.date_part:
            raise BadRequestError("A group_by field takes date_trunc or date_part, not both", {"field": spec.field})
        if spec.date_trunc and spec.date_trunc not in _TRUNC:
            raise BadRequestError(f"Unsupported date_trunc '{spec.date_trunc}'", {"supported": list(_TRUNC)})
        if spec.date_part and spec.date_part not in _PARTS:
            raise BadRequestError(f"Unsupported date_part '{spec.date_part}'", {"supported": list(_PARTS)})
    for bucket in request.range_buckets or []:
        if list(bucket.boundaries) != sorted(bucket.boundaries):
            raise BadRequestError("range_buckets boundaries must be in ascending order", {"field": bucket.field})


def aggregate(records: list[dict[str, Any]], request: AggregationRequest, scanned: int) -> dict[str, Any]:
    """The AggregationResponse over the store's records (`scanned`: how many the store matched)."""
    started = time.perf_counter()
    check(request)
    rows = _unwound(records, request)
    groups: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for row in rows:
        group = _group_of(row, request)
        groups.setdefault(json.dumps(group, sort_keys=True, default=str), (group, []))[1].append(row)
    results = []
    for group, members in groups.values():
        metrics = {op.alias: _metric(op.function, _values(op, members)) for op in request.aggregations}
        if _passes(metrics, request.having or []):
            results.append({"group": group, "metrics": metrics})
    if request.sort_by:
        key, reverse = request.sort_by, request.sort_direction.lower() == "desc"
        results.sort(key=lambda r: _sort_key(r["metrics"].get(key, r["group"].get(key))), reverse=reverse)
    if request.limit:
        results = results[: request.limit]
    query_info: dict[str, Any] = {
        "execution_time_ms": round((time.perf_counter() - started) * 1000, 2),
        "documents_scanned": scanned,
    }
    if request.unwind is not None:
        query_info["rows_after_unwind"] = len(rows)
    return {"results": results, "total_groups": len(results), "query_info": query_info}


def _values(op: AggregationOperation, rows: list[dict[str, Any]]) -> list[Any]:
    """The values an operation reads from a group's rows (`count` counts the rows themselves)."""
    field = _read_field(op)
    return [row.get(field) for row in rows] if field else [1] * len(rows)


def _read_field(op: AggregationOperation) -> str | None:
    """The field an operation reads: `distinct_field` counts for count_distinct only."""
    return (op.distinct_field or op.field) if op.function == "count_distinct" else op.field


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))
