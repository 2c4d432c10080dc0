"""The contract's filter language, independent of where it is compiled to.

`store/filters.py` compiles it to SQL for the metadata tables and
`index/filters.py` to Lance SQL for documents. Both walk the tree with `walk`
and read conditions with `parse_condition`, so the tree's shape, the operators,
the limits and the errors are the same everywhere; a backend only says how one
condition and one AND / OR / NOT look in its own SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from strataflow.errors import BadRequestError

OPERATORS = frozenset(
    [
        "eq",
        "ne",
        "gt",
        "lt",
        "gte",
        "lte",
        "in",
        "nin",
        "contains",
        "starts_with",
        "ends_with",
        "regex",
        "exists",
        "is_null",
        "text",
    ]
)
MAX_DEPTH = 12
MAX_CONDITIONS = 256
LOGICAL_KEYS = frozenset({"AND", "OR", "NOT"})

T = TypeVar("T")


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


def walk(filters: dict[str, Any], leaf: Callable[[str, str, Any], T], join: Callable[[str, list[T]], T]) -> T:
    """Fold a filter tree into a backend's clause.

    `leaf(field, operator, value)` makes one condition's clause; `join(key, clauses)` combines
    clauses for key "AND" (all hold), "OR" (any holds) or "NOT" (none holds). A node's own
    clauses (its logical keys and `{"field": value}` shorthands) are joined with "AND"; an empty
    list there means "no constraint". A logical key with an empty list adds nothing.
    """
    conditions = 0

    def condition(cond: dict[str, Any]) -> T:
        nonlocal conditions
        conditions += 1
        check_count(conditions)
        return leaf(*parse_condition(cond))

    def node(item: Any, depth: int) -> T:
        check_depth(depth)
        if not isinstance(item, dict):
            raise BadRequestError("Each filter must be an object")
        if "field" in item:
            return condition(item)
        clauses: list[T] = []
        for key, value in item.items():
            if key == "case_sensitive":
                continue
            if key in LOGICAL_KEYS:
                if not isinstance(value, list):
                    raise BadRequestError(f"'{key}' takes a list of filters")
                children = [node(child, depth + 1) for child in value]
                if children:
                    clauses.append(join(key, children))
            else:  # shorthand {"metadata.tag": "x"} means equality
                clauses.append(condition({"field": key, "operator": "eq", "value": value}))
        return join("AND", clauses)

    return node(filters, 0)
