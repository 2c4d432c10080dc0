"""Compile the contract's filter language (LogicalOperator / FilterCondition) to SQL.

A `FieldMap` says which names are plain columns and which prefixes are JSON
columns (e.g. `metadata.category`). Anything else is refused with a clear
error rather than silently matching nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, false, func, not_, or_, true
from sqlalchemy.orm import InstrumentedAttribute

from strataflow.errors import BadRequestError
from strataflow.filter_language import walk
from strataflow.store.types import json_value

_LEADING_OPTIONS = re.compile(r"^\(\?([a-zA-Z]+)\)")


@dataclass(frozen=True)
class FieldMap:
    """Names a filter or sort may use for one resource."""

    columns: dict[str, InstrumentedAttribute[Any]]
    json_columns: dict[str, InstrumentedAttribute[Any]] = field(default_factory=dict)

    def allowed(self) -> list[str]:
        return sorted(self.columns) + [f"{name}.<key>" for name in sorted(self.json_columns)]


@dataclass
class FieldTarget:
    """What a field name resolved to: a column, or a path inside a JSON column."""

    column: InstrumentedAttribute[Any]
    path: tuple[str, ...] = ()

    def as_type(self, value: Any) -> ColumnElement[Any]:
        if not self.path:
            return self.column.expression
        element = self.column[self.path]  # a JSON path: the column's type decides how it reads
        typed: ColumnElement[Any]
        if isinstance(value, bool):
            typed = element.as_boolean()
        elif isinstance(value, (int, float)):
            typed = element.as_float()
        else:
            typed = element.as_string()
        return typed

    def raw(self) -> ColumnElement[Any]:
        return json_value(self.column.expression, *self.path) if self.path else self.column.expression


def resolve_field(name: str, fields: FieldMap) -> FieldTarget:
    if name in fields.columns:
        return FieldTarget(fields.columns[name])
    root, _, rest = name.partition(".")
    if root in fields.json_columns and rest:
        parts = tuple(rest.split("."))
        if any(not p for p in parts):
            raise BadRequestError(f"Invalid field path '{name}'", {"field": name})
        return FieldTarget(fields.json_columns[root], parts)
    raise BadRequestError(
        f"Cannot filter or sort on field '{name}'",
        {"field": name, "allowed_fields": fields.allowed()},
    )


def _ignore_case(pattern: str) -> str:
    """The pattern with an embedded (?i). Not `regexp_match(flags="i")`: SQLAlchemy's SQLite
    dialect drops flags silently, so SQLite matched case-sensitively where PostgreSQL did not.
    Both engines (Python `regex`, PostgreSQL AREs) read leading embedded options; an existing
    leading option group is merged, since PostgreSQL accepts only one."""
    options = _LEADING_OPTIONS.match(pattern)
    if options:
        return f"(?i{options.group(1)}){pattern[options.end() :]}"
    return f"(?i){pattern}"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _join(key: str, clauses: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    if key == "OR":
        return or_(false(), *clauses)
    if key == "NOT":
        return not_(or_(false(), *clauses))
    return and_(true(), *clauses)


class _Compiler:
    def __init__(self, fields: FieldMap, case_sensitive: bool) -> None:
        self.fields = fields
        self.case_sensitive = case_sensitive

    def condition(self, name: str, operator: str, value: Any) -> ColumnElement[bool]:
        return self.apply(resolve_field(name, self.fields), operator, value, name)

    def _fold(self, expr: ColumnElement[Any], value: Any) -> tuple[ColumnElement[Any], Any]:
        if self.case_sensitive or not isinstance(value, str):
            return expr, value
        return func.lower(expr), value.lower()

    def apply(self, target: FieldTarget, op: str, value: Any, name: str) -> ColumnElement[bool]:
        if op in ("exists", "is_null"):
            present = target.raw().is_not(None)
            wanted = bool(value) if value is not None else True
            return present if (op == "exists") == wanted else not_(present)
        if op in ("in", "nin"):
            if not isinstance(value, list):
                raise BadRequestError(f"Operator '{op}' needs a list value", {"field": name})
            members = [self._equal(target, v) for v in value]
            matched = or_(false(), *members)
            return matched if op == "in" else not_(matched)
        if op in ("contains", "starts_with", "ends_with", "text"):
            if not isinstance(value, str):
                raise BadRequestError(f"Operator '{op}' needs a string value", {"field": name})
            expr, folded = self._fold(target.as_type(""), value)
            pattern = _like_escape(folded)
            pattern = {"starts_with": f"{pattern}%", "ends_with": f"%{pattern}"}.get(op, f"%{pattern}%")
            return expr.like(pattern, escape="\\")
        if op == "regex":
            if not isinstance(value, str):
                raise BadRequestError("Operator 'regex' needs a string pattern", {"field": name})
            return target.as_type("").regexp_match(value if self.case_sensitive else _ignore_case(value))
        if op == "eq":
            return self._equal(target, value)
        if op == "ne":
            return not_(self._equal(target, value))
        if value is None or isinstance(value, (dict, list)):
            raise BadRequestError(f"Operator '{op}' needs a scalar value", {"field": name})
        expr = target.as_type(value)
        compared: ColumnElement[bool] = {
            "gt": expr > value,
            "lt": expr < value,
            "gte": expr >= value,
            "lte": expr <= value,
        }[op]
        return compared

    def _equal(self, target: FieldTarget, value: Any) -> ColumnElement[bool]:
        if value is None:
            return target.raw().is_(None)
        if isinstance(value, (dict, list)):
            raise BadRequestError("Equality needs a scalar value")
        expr, folded = self._fold(target.as_type(value), value)
        equal: ColumnElement[bool]
        if isinstance(value, bool) and not target.path:
            equal = expr == value if isinstance(target.column.type, Boolean) else expr == str(value)
        else:
            equal = expr == folded
        return equal


def compile_filters(
    filters: dict[str, Any] | None, fields: FieldMap, *, case_sensitive: bool | None = None
) -> ColumnElement[bool] | None:
    """SQL for a filter tree, or None when there is nothing to filter on."""
    if not filters:
        return None
    sensitive = bool(filters.get("case_sensitive", False)) if case_sensitive is None else case_sensitive
    return walk(filters, _Compiler(fields, sensitive).condition, _join)


def sort_expression(sort_field: str, direction: str, fields: FieldMap) -> ColumnElement[Any]:
    target = resolve_field(sort_field, fields).raw()
    if str(direction).lower() not in ("asc", "desc"):
        raise BadRequestError("Sort direction must be 'asc' or 'desc'", {"direction": direction})
    return target.desc() if str(direction).lower() == "desc" else target.asc()


def text_search(text: str, *columns: Any) -> ColumnElement[bool]:
    """The lists' `search`: a case-insensitive substring of any column (its % and _ match themselves)."""
    pattern = f"%{_like_escape(text.lower())}%"
    return or_(*(func.lower(func.coalesce(column, "")).like(pattern, escape="\\") for column in columns))
