"""The runner interface: run one extractor over a chunk of input rows, somewhere."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from strataflow.extractors.base import ExtractorInput, RowResult


@dataclass(frozen=True)
class ExtractionCall:
    """Everything a worker needs, and nothing it must not know (no database, no HTTP)."""

    extractor_name: str
    extractor_version: str
    parameters: dict[str, Any]
    inputs: list[ExtractorInput]
    work_dir: Path
    device: str = "cpu"
    models_dir: Path | None = None


class Runner(Protocol):
    name: str

    def submit(self, call: ExtractionCall) -> Future[list[RowResult]]:
        """Start extracting; the future yields one RowResult per input row, in order."""
        ...

    def close(self) -> None: ...
