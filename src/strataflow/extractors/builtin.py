"""The extractors that ship with Strataflow. Add new built-ins to BUILTIN_EXTRACTORS."""

from __future__ import annotations

from typing import Any

from strataflow.extractors.base import Extractor
from strataflow.extractors.passthrough import PassthroughExtractor
from strataflow.extractors.registry import register
from strataflow.extractors.text import TextExtractor

BUILTIN_EXTRACTORS: list[Extractor[Any]] = [TextExtractor(), PassthroughExtractor()]


def register_builtins() -> None:
    for extractor in BUILTIN_EXTRACTORS:
        register(extractor)
