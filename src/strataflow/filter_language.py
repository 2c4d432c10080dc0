"""The contract's filter language, independent of where it is compiled to.

`store/filters.py` compiles it to SQL for the metadata tables and
`index/filters.py` to Lance SQL for documents; both read conditions here, so
the operators, the limits and the errors are the same everywhere.
"""

from __future__ import annotations

from typing import Any

from strataflow.errors import BadRequestError

OPERATORS = frozenset(
    ["eq", "ne", "gt", "lt", "gte", "lte", "in", "nin", "contains", "starts_with", "ends_with", "regex", "exists", "is_null", "text"]
)
MAX_DEPTH = 12
MAX_CONDITIONS = 256
LOGICAL_KEYS = frozenset({"AND", "OR", "NOT"})


def check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BadRequestError(f"Filters nest deeper than {MAX_DEPTH} levels")


def check_count(count: int) -> None:
    if count > MAX_CONDITIONS:
        raise BadRequestError(f"Filters may hold at most {MAX_CONDITIONS} conditions")


def parse_condition(cond: dict[str, Any]) -> tuple[str, str, Any]:
    """(field, operator, value) of a FilterCondition, or a clear error naming what is wrong."""
    name = cond.get("field")
    operator = str(cond.get("operator") or "eq").lower()
    if not isinstance(name, str) or not name:
        raise BadRequestError("A filter condition needs a 'field' string")
    if operator not in OPERATORS:
        raise BadRequestError(
            f"Unknown filter operator '{operator}'",
            {"field": name, "operator": operator, "allowed_operators": sorted(OPERATORS)},
        )
    value = cond.get("value")
    if isinstance(value, dict) and value.get("type") == "dynamic":
        raise BadRequestError("Dynamic filter values are only available in retrievers", {"field": name})
    return name, operator, value
