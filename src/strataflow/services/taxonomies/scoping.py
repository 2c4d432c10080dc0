"""An application's `scroll_filters`, evaluated on a document in memory.

apply-taxonomy hands the filters to the index as a query (`where_of`); a batch enriches documents
before they are stored, so there the same filter tree is evaluated here, on each built document,
with the index's semantics: strings compare case-insensitively unless `case_sensitive`, a
missing field equals nothing, numbers compare as numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from strataflow.filter_language import walk
from strataflow.index.records import StoredDocument
from strataflow.paths import value_at

Predicate = Callable[[StoredDocument], bool]


def _value(doc: StoredDocument, name: str) -> Any:
    if name in ("document_id", "collection_id"):
        return getattr(doc, name)
    if name.startswith("_internal."):
        return value_at(doc.internal, name[len("_internal.") :])
    return value_at(doc.payload, name)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _condition(sensitive: bool) -> Callable[[str, str, Any], Predicate]:
    def fold(text: Any) -> str:
        return str(text) if sensitive else str(text).lower()

    def equal(have: Any, want: Any) -> bool:
        if want is None:
            return have is None
        if isinstance(want, bool) or isinstance(have, bool):
            return have is want
        if _number(want):
            return _number(have) and float(have) == float(want)
        return isinstance(have, str) and fold(have) == fold(want)

    def leaf(name: str, op: str, want: Any) -> Predicate:
        def test(doc: StoredDocument) -> bool:
            have = _value(doc, name)
            if op in ("exists", "is_null"):
                wanted = True if want is None else bool(want)
                return (have is not None) == wanted if op == "exists" else (have is None) == wanted
            if op in ("in", "nin"):
                found = any(equal(have, w) for w in want or [])
                return found if op == "in" else not found
            if op == "eq":
                return equal(have, want)
            if op == "ne":
                return not equal(have, want)
            texts = (
                [have]
                if isinstance(have, str)
                else [h for h in have or [] if isinstance(h, str)]
                if isinstance(have, list)
                else []
            )
            if op in ("contains", "text"):
                return any(fold(want) in fold(t) for t in texts)
            if op == "starts_with":
                return any(fold(t).startswith(fold(want)) for t in texts)
            if op == "ends_with":
                return any(fold(t).endswith(fold(want)) for t in texts)
            if op == "regex":
                flags = 0 if sensitive else re.IGNORECASE
                return isinstance(have, str) and re.search(str(want), have, flags) is not None
            if _number(want) and _number(have):
                a, b = float(have), float(want)
            elif isinstance(want, str) and isinstance(have, str):
                a, b = have, want  # type: ignore[assignment]
            else:
                return False
            return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]

        return test

    return leaf


def _join(key: str, clauses: list[Predicate]) -> Predicate:
    if key == "OR":
        return lambda doc: any(c(doc) for c in clauses)
    if key == "NOT":
        return lambda doc: not any(c(doc) for c in clauses)
    return lambda doc: all(c(doc) for c in clauses)


def predicate(filters: dict[str, Any] | None) -> Predicate | None:
    """A test for documents, or None when the filters constrain nothing."""
    if not filters:
        return None
    return walk(filters, _condition(bool(filters.get("case_sensitive", False))), _join)
