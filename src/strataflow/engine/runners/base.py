"""The runner interface: run one extractor over a chunk of input rows, somewhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from strataflow.extractors.base import ExtractorInput, RowResult
from strataflow.extractors.limits import ExtractionLimits


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
    limits: ExtractionLimits = field(default_factory=ExtractionLimits)

    @classmethod
    def for_extractor(
        cls,
        config: dict[str, Any],
        inputs: list[ExtractorInput],
        work_dir: Path,
        device: str,
        models_dir: Path | None,
        limits: ExtractionLimits | None = None,
    ) -> ExtractionCall:
        """The call for a collection's `feature_extractor` config (name, version, parameters)."""
        return cls(
            config["feature_extractor_name"],
            config["version"],
            config.get("parameters") or {},
            inputs,
            work_dir,
            device,
            models_dir,
            limits or ExtractionLimits(),
        )


@dataclass
class RunNotes:
    """What a runner tells the tier about where its work ran: ids and log lines.

    The executor passes one per collection; a runner appends to it before it
    resolves a call's future, so the notes are complete once the result is read.
    """

    job_id: str | None = None
    actor_ids: list[str] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    # Told why, when the runner sees the tier make no progress (Ray: what the cluster waits for).
    on_stall: Callable[[str], None] | None = None
    stalled: str | None = None  # set by the runner once it saw that: later calls fail at once with it


class Pipelines(Protocol):
    """Runs whole tiers as pipelines over their manifests (the Ray runner with Ray Data)."""

    def run(self, pipeline: Any, notes: RunNotes) -> Iterator[pa.Table]:
        """Start the pipeline; yield its output batches. Closing the iterator stops it."""
        ...


class Runner(Protocol):
    name: str

    @property
    def pipelines(self) -> Pipelines | None:
        """Set when this runner runs a tier's collections as pipelines; None: chunks go through `submit`."""
        ...

    def submit(self, call: ExtractionCall, notes: RunNotes | None = None) -> Future[list[RowResult]]:
        """Start extracting; the future yields one RowResult per input row, in order."""
        ...

    def close(self) -> None: ...
