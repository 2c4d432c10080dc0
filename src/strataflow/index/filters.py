"""Compile the contract's filter language to a LanceDB (DataFusion) SQL predicate.

Fields are either real columns (document id, lineage, timestamps) or paths
into a JSON column (the document payload, `_internal`). JSON values are read
with `json_extract`, which yields the value's JSON text (or NULL when the path
is absent) and never fails on a type mismatch, so a filter on a field holding
mixed types matches what it can instead of aborting the query:

- strings compare as JSON text (`"abc"`), numbers through `try_cast(... AS DOUBLE)`
  (a string "3" is not the number 3), booleans as `true`/`false`;
- contains / starts_with / ends_with are LIKE patterns over the JSON text, so
  `contains` also matches an element of an array of strings.

Every value is escaped here; no caller-supplied text reaches the SQL unquoted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strataflow.errors import BadRequestError
from strataflow.filter_language import walk

_SEGMENT = re.compile(r'^[^"\\\x00-\x1f]{1,200}$')
_COMPARE = {"gt": ">", "lt": "<", "gte": ">=", "lte": "<="}


@dataclass(frozen=True)
class Target:
    """What a field name resolves to: a string column, or a path inside a JSON column."""

    column: str
    path: tuple[str, ...] = ()

    @property
    def is_json(self) -> bool:
        return bool(self.path)

    def json_text(self) -> str:
        """SQL for the value's JSON text at the path (NULL when absent)."""
        return f"json_extract({self.column}, {sql_string(json_path(self.path))})"

    def number(self) -> str:
        return f"try_cast({self.json_text()} AS DOUBLE)" if self.is_json else f"try_cast({self.column} AS DOUBLE)"


Resolver = Callable[[str], Target]


def json_path(path: tuple[str, ...]) -> str:
    """A JSONPath in bracket notation, so keys with dashes or dots are addressed exactly."""
    for segment in path:
        if not _SEGMENT.match(segment):
            raise BadRequestError(f"Invalid field path segment '{segment}'", {"segment": segment})
    return "$" + "".join(f'["{segment}"]' for segment in path)


def sql_string(text: str) -> str:
    if "\x00" in text:
        raise BadRequestError("Filter values may not contain NUL characters")
    return "'" + text.replace("'", "''") + "'"


def sql_number(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequestError("Filter numbers must be finite")
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _json_literal(value: str) -> str:
    """A string as its JSON text, the way json_extract renders it (UTF-8, not \\u-escaped)."""
    return json.dumps(value, ensure_ascii=False)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _join(key: str, clauses: list[str]) -> str:
    if not clauses:
        return "TRUE"
    if key == "NOT":
        return "(NOT (" + " OR ".join(clauses) + "))"
    return "(" + f" {key} ".join(clauses) + ")"


class _Compiler:
    def __init__(self, resolve: Resolver, case_sensitive: bool) -> None:
        self.resolve = resolve
        self.case_sensitive = case_sensitive

    def condition(self, name: str, operator: str, value: Any) -> str:
        return self.apply(self.resolve(name), operator, value, name)

    def apply(self, target: Target, op: str, value: Any, name: str) -> str:
        if op in ("exists", "is_null"):
            wanted = True if value is None else bool(value)
            present = self._present(target) if op == "exists" else self._null(target)
            return present if wanted else f"(NOT {present})"
        if op in ("in", "nin"):
            if not isinstance(value, list) or not value:
                raise BadRequestError(f"Operator '{op}' needs a non-empty list value", {"field": name})
            matched = "(" + " OR ".join(self._equal(target, v, name) for v in value) + ")"
            return matched if op == "in" else f"(NOT coalesce({matched}, false))"
        if op in ("contains", "starts_with", "ends_with", "text"):
            return self._like(target, op, value, name)
        if op == "regex":
            return self._regex(target, value, name)
        if op == "eq":
            return self._equal(target, value, name)
        if op == "ne":
            # coalesce: a missing field, or one of another type (NULL comparisons), is "not equal"
            return f"(NOT coalesce({self._equal(target, value, name)}, false))"
        return self._compare(target, _COMPARE[op], value, name)

    def _present(self, target: Target) -> str:
        return f"({target.json_text() if target.is_json else target.column} IS NOT NULL)"

    def _null(self, target: Target) -> str:
        if not target.is_json:
            return f"({target.column} IS NULL)"
        text = target.json_text()
        return f"({text} IS NULL OR {text} = 'null')"

    def _text(self, target: Target) -> str:
        return target.json_text() if target.is_json else target.column

    def _fold(self, sql: str, literal: str) -> tuple[str, str]:
        if self.case_sensitive:
            return sql, sql_string(literal)
        return f"lower({sql})", sql_string(literal.lower())

    def _equal(self, target: Target, value: Any, name: str) -> str:
        if value is None:
            return self._null(target)
        if isinstance(value, (dict, list)):
            raise BadRequestError("Equality needs a scalar value", {"field": name})
        if isinstance(value, bool):
            literal = "true" if value else "false"
            return f"({self._text(target)} = {sql_string(literal)})"
        if _is_number(value):
            return f"({target.number()} = {sql_number(value)})"
        text = str(value)
        sql, literal = self._fold(self._text(target), _json_literal(text) if target.is_json else text)
        return f"({sql} = {literal})"

    def _compare(self, target: Target, symbol: str, value: Any, name: str) -> str:
        if _is_number(value):
            return f"({target.number()} {symbol} {sql_number(value)})"
        if not isinstance(value, str):
            raise BadRequestError("Comparisons need a number or a string value", {"field": name})
        if target.is_json:  # strings order the same with their quotes; keep to string values only
            text = target.json_text()
            return f"({text} LIKE '\"%' AND {text} {symbol} {sql_string(_json_literal(value))})"
        return f"({target.column} {symbol} {sql_string(value)})"

    def _like(self, target: Target, op: str, value: Any, name: str) -> str:
        if not isinstance(value, str):
            raise BadRequestError(f"Operator '{op}' needs a string value", {"field": name})
        needle = _json_literal(value)[1:-1] if target.is_json else value
        needle = _like_escape(needle)
        quote = '"' if target.is_json else ""
        pattern = {"starts_with": f"{quote}{needle}%", "ends_with": f"%{needle}{quote}"}.get(op, f"%{needle}%")
        sql, literal = self._fold(self._text(target), pattern)
        return f"({sql} LIKE {literal} ESCAPE '\\')"

    def _regex(self, target: Target, value: Any, name: str) -> str:
        if not isinstance(value, str) or not value:
            raise BadRequestError("Operator 'regex' needs a string pattern", {"field": name})
        pattern = value if self.case_sensitive else f"(?i){value}"
        if not target.is_json:
            return f"regexp_like({target.column}, {sql_string(pattern)})"
        text = target.json_text()
        inner = f"substr({text}, 2, char_length({text}) - 2)"  # the string without its JSON quotes
        return f"({text} LIKE '\"%' AND regexp_like({inner}, {sql_string(pattern)}))"


def compile_filter(
    filters: dict[str, Any] | None, resolve: Resolver, *, case_sensitive: bool | None = None
) -> str | None:
    """A Lance SQL predicate for a filter tree, or None when there is nothing to filter on."""
    if not filters:
        return None
    if not isinstance(filters, dict):
        raise BadRequestError("filters must be an object")
    sensitive = bool(filters.get("case_sensitive", False)) if case_sensitive is None else case_sensitive
    sql = walk(filters, _Compiler(resolve, sensitive).condition, _join)
    return None if sql == "TRUE" else sql
