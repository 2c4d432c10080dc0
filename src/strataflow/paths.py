"""Dot paths into nested JSON values (`metadata.title`, `items.price`): the one reader for every
place a client names a field inside a document, an object or an array element."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def value_at(value: Any, path: str | Sequence[str]) -> Any:
    """The value at `path`, or None where a step is missing or not an object."""
    for part in path.split(".") if isinstance(path, str) else path:
        value = value.get(part) if isinstance(value, dict) else None
    return value
