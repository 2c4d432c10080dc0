"""aggregate: statistics over the hits (count, sum, avg, percentiles, frequencies, ...), optionally
per group. The rows go in the response's `aggregations` under the stage's name; the hits pass on
when `include_documents` is true, and none do otherwise (the aggregation is the answer)."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from typing import Any

from pydantic import Field

from strataflow.errors import BadRequestError
from strataflow.retrieval.context import StageContext, StageParams, parse_params
from strataflow.retrieval.results import Hit, field_value

FUNCTIONS = (
    "count",
    "count_distinct",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "last",
    "collect",
    "collect_distinct",
    "percentile",
    "stddev",
    "variance",
    "frequency",
    "co_occurrence",
    "correlation",
)
NEEDS_FIELD = set(FUNCTIONS) - {"count"}
COLLECT_CAP = 1000  # values one collect keeps, so a wide aggregation cannot grow without bound


class AggregationSpec(StageParams):
    function: str
    field: str | None = None
    field_b: str | None = None
    percentile_value: float | None = Field(default=None, ge=0, le=100)
    top_k: int | None = Field(default=None, ge=1, le=100)
    alias: str = Field(min_length=1)


class GroupField(StageParams):
    field: str = Field(min_length=1)
    alias: str | None = None


class AggregateParams(StageParams):
    """The SDK's StageParamsAggregate."""

    aggregations: list[AggregationSpec] = Field(min_length=1)
    group_by: list[GroupField] | None = None
    sort_by: str | None = None
    sort_order: str = Field(default="desc", pattern="^(?i)(asc|desc)$")
    limit: int | None = Field(default=None, ge=1, le=1000)
    include_documents: bool = False


def _numbers(values: list[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _percentile(numbers: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not numbers:
        return None
    ordered = sorted(numbers)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _aggregate(spec: AggregationSpec, hits: list[Hit]) -> Any:
    name = spec.function
    if name == "count":
        return len(hits) if spec.field is None else sum(1 for h in hits if field_value(h, spec.field) is not None)
    values = [field_value(h, spec.field or "") for h in hits]
    present = [v for v in values if v is not None]
    numbers = _numbers(present)
    if name == "count_distinct":
        return len({_key(v) for v in present})
    if name in ("sum", "avg", "min", "max", "stddev", "variance"):
        if not numbers:
            return None
        if name == "sum":
            return sum(numbers)
        if name == "avg":
            return statistics.fmean(numbers)
        if name == "min":
            return min(numbers)
        if name == "max":
            return max(numbers)
        return statistics.pstdev(numbers) if name == "stddev" else statistics.pvariance(numbers)
    if name == "first":
        return present[0] if present else None
    if name == "last":
        return present[-1] if present else None
    if name == "collect":
        return present[:COLLECT_CAP]
    if name == "collect_distinct":
        seen: dict[str, Any] = {}
        for value in present:
            seen.setdefault(_key(value), value)
        return list(seen.values())[:COLLECT_CAP]
    if name == "percentile":
        return _percentile(numbers, spec.percentile_value if spec.percentile_value is not None else 50.0)
    if name == "frequency":
        counts = Counter(_key(v) for item in present for v in (item if isinstance(item, list) else [item]))
        return [{"value": v, "count": c} for v, c in counts.most_common(spec.top_k or 10)]
    return _pairwise(spec, hits)


def _pairwise(spec: AggregationSpec, hits: list[Hit]) -> Any:
    if not spec.field_b:
        raise BadRequestError(f"Aggregation '{spec.alias}' ({spec.function}) needs field_b", {"alias": spec.alias})
    pairs = [(field_value(h, spec.field or ""), field_value(h, spec.field_b)) for h in hits]
    if spec.function == "co_occurrence":
        counts = Counter(
            (_key(a), _key(b))
            for left, right in pairs
            if left is not None and right is not None
            for a in (left if isinstance(left, list) else [left])
            for b in (right if isinstance(right, list) else [right])
        )
        return [{"value": a, "value_b": b, "count": c} for (a, b), c in counts.most_common(spec.top_k or 10)]
    numeric = [(float(a), float(b)) for a, b in pairs if _numbers([a]) and _numbers([b])]
    if len(numeric) < 2:
        return None
    xs, ys = zip(*numeric, strict=True)
    try:
        return statistics.correlation(xs, ys)
    except statistics.StatisticsError:  # a constant column has no correlation
        return None


def aggregate(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: AggregateParams = parse_params(AggregateParams, ctx.stage_name, raw)
    for spec in params.aggregations:
        spec.function = spec.function.lower()
        if spec.function not in FUNCTIONS:
            raise BadRequestError(
                f"Unknown aggregation function '{spec.function}'", {"function": spec.function, "supported": FUNCTIONS}
            )
        if spec.function in NEEDS_FIELD and not spec.field:
            raise BadRequestError(f"Aggregation '{spec.alias}' ({spec.function}) needs a field", {"alias": spec.alias})
    pool = list(hits or [])
    groups: dict[str, tuple[dict[str, Any], list[Hit]]] = {}
    for hit in pool:
        keys = {(g.alias or g.field): field_value(hit, g.field) for g in params.group_by or []}
        groups.setdefault(_key(keys), (keys, []))[1].append(hit)
    if not params.group_by:
        groups = {"all": ({}, pool)}
    rows = [
        {**keys, **{s.alias: _aggregate(s, members) for s in params.aggregations}} for keys, members in groups.values()
    ]
    if params.sort_by:
        present = [r for r in rows if r.get(params.sort_by) is not None]
        absent = [r for r in rows if r.get(params.sort_by) is None]
        present.sort(key=lambda r: _sortable(r[params.sort_by or ""]), reverse=params.sort_order.lower() == "desc")
        rows = present + absent
    if params.limit:
        rows = rows[: params.limit]
    ctx.outputs["aggregations"] = rows
    ctx.notes.update(groups=len(rows))
    return pool if params.include_documents else []


def _sortable(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 0, float(value)
    return 1, _key(value)
