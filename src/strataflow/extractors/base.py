"""The extractor contract: a pure function from input rows to output documents.

An extractor knows nothing of HTTP, SQL, batches or storage back ends. The
engine hands it rows whose file inputs are already local paths (so media
streams from disk and never sits whole in memory), and takes back, per input
row, either the documents it produced or a categorised failure. Because it is
pure, the same extractor runs in a thread, a process pool or a Ray actor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from strataflow.extractors.limits import ExtractionLimits


class ErrorCategory(StrEnum):
    """The contract's batch error categories."""

    DEPENDENCY = "dependency"
    AUTHENTICATION = "authentication"
    VALIDATION = "validation"  # bad input data: permanent, a retry will not help
    RUNTIME = "runtime"
    NETWORK = "network"  # transient
    RESOURCE = "resource"  # transient: memory, disk, timeouts

    @property
    def transient(self) -> bool:
        return self in (ErrorCategory.NETWORK, ErrorCategory.RESOURCE, ErrorCategory.RUNTIME)


class ExtractionError(Exception):
    """Raised inside an extractor for one input row; the row fails, the batch goes on."""

    def __init__(self, category: ErrorCategory, message: str) -> None:
        super().__init__(message)
        self.category = category
        self.message = message

    def __reduce__(self) -> tuple[type[ExtractionError], tuple[ErrorCategory, str]]:
        # Results cross process boundaries (process pool, Ray): keep the category.
        return (type(self), (self.category, self.message))


class OutOfMemory(ExtractionError):
    """A row ran out of memory: the worker's ceiling (STRATAFLOW_WORKER_MEMORY_MB) or the machine's.

    Transient on its face, but the runner treats it like a dead worker: it reruns the row
    alone, and a row that runs out of memory twice on its own fails for good.
    """

    def __init__(self, category: ErrorCategory = ErrorCategory.RESOURCE, message: str = "out of memory") -> None:
        super().__init__(category, message)


@dataclass(frozen=True)
class VectorIndexSpec:
    """One vector space an extractor writes. `name` is the feature's output name."""

    name: str
    dimensions: int
    model: str
    description: str
    distance: str = "cosine"
    datatype: str = "float32"
    # What a query of this space may be; None: the extractor's input types. A vision model's space
    # takes text (its text tower) and images (its image tower).
    query_inputs: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OutputField:
    name: str
    type: str  # a bucket-schema field type: string, integer, float, text, image, ...
    description: str = ""


@dataclass(frozen=True)
class InputField:
    name: str
    type: str
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class ExtractorInput:
    """One row to extract from: a bucket object, or an upstream document.

    `values` holds the mapped inputs by the extractor's input names. File-typed
    inputs are local file paths (`Path`); text inputs are `str`.
    `source` carries the identity the engine needs for lineage and ids; an
    extractor may read it but never depends on its layout, with one exception:
    `source["fields"]` (the source row's fields) and `source["vectors"]` (its
    vectors by storage name) are always present, for extractors that declare
    `copies_source` (the passthrough extractor).
    """

    row_id: str
    values: dict[str, Any]
    source: dict[str, Any] = field(default_factory=dict)


@dataclass
class DocumentBlob:
    """A file an extractor made (segment, thumbnail, page image) to store with the document."""

    field: str
    path: Path
    role: str = "artifact"  # source | processed | thumbnail | artifact | aux
    type: str = "other"  # video | image | audio | text | pdf | other
    content_type: str | None = None


@dataclass
class ExtractedDocument:
    """One output document. `position` makes its id deterministic (chunk index, times, page)."""

    fields: dict[str, Any]
    vectors: dict[str, list[float]] = field(default_factory=dict)
    position: dict[str, Any] = field(default_factory=dict)
    blobs: list[DocumentBlob] = field(default_factory=list)


@dataclass
class RowResult:
    """What became of one input row: documents, or a failure."""

    row_id: str
    documents: list[ExtractedDocument] = field(default_factory=list)
    error: ExtractionError | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class Resources:
    """What an extractor needs to be placed (the Ray runner reads this)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_mb: int = 512


@dataclass
class ExtractContext:
    """Per-job surroundings: a scratch directory that the engine deletes afterwards."""

    work_dir: Path
    device: str = "cpu"
    should_stop: Callable[[], bool] = lambda: False
    models_dir: Path | None = None  # where models assembled on disk live (Whisper); the engine's data dir
    limits: ExtractionLimits = field(default_factory=ExtractionLimits)  # the operator's caps on one row


class ExtractorParams(BaseModel):
    """Base of every parameter model. Unknown keys are ignored (SDKs send newer ones)."""

    model_config = ConfigDict(extra="ignore")


P = TypeVar("P", bound=ExtractorParams)


class Extractor(Generic[P]):
    """Subclass, set the class attributes, implement `extract`.

    `extract` must be deterministic for the same rows and parameters, so that
    re-running a tier overwrites documents instead of duplicating them.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "v1"
    description: ClassVar[str]
    params_model: ClassVar[type[ExtractorParams]]
    inputs: ClassVar[Sequence[InputField]]
    resources: ClassVar[Resources] = Resources()
    # True for an extractor that copies its source row (fields and vectors) into each
    # document. A collection using it then inherits its source's output schema and
    # vector indexes, which `output_fields` and `vector_indexes` cannot know from the
    # parameters alone.
    copies_source: ClassVar[bool] = False

    @property
    def extractor_id(self) -> str:
        return f"{self.name}_{self.version}"

    def output_fields(self, params: P) -> list[OutputField]:
        raise NotImplementedError

    def complete_parameters(self, params: P, extractor_params: dict[str, Any] | None) -> P:
        """Fill in, once, at collection creation, what a request left to the server (the operator's
        default model); the result is what the collection stores and every run reads back.
        `extractor_params` is the request's `feature_extractor.params`."""
        return params

    def vector_indexes(self, params: P) -> list[VectorIndexSpec]:
        return []

    def possible_vector_indexes(self) -> list[VectorIndexSpec]:
        """Every vector space the extractor can write, whatever its parameters (for the catalogue)."""
        return self.vector_indexes(self.params_model())  # type: ignore[arg-type]

    def position_fields(self) -> list[str]:
        """Output fields that locate a document inside its source (part of its id)."""
        return []

    def extract(self, rows: list[ExtractorInput], params: P, context: ExtractContext) -> list[RowResult]:
        raise NotImplementedError


class ModelCache:
    """Models load once per process and are shared by every job in it."""

    _lock = threading.Lock()
    _models: ClassVar[dict[str, Any]] = {}

    @classmethod
    def get(cls, key: str, loader: Callable[[], Any]) -> Any:
        with cls._lock:
            if key not in cls._models:
                cls._models[key] = loader()
            return cls._models[key]


def over_limit(what: str, limit: float, setting: str, unit: str = "", value: float | None = None) -> ExtractionError:
    """The permanent row failure for an input past a cap, naming the cap and the setting that raises it."""
    tail = f" {unit}" if unit else ""
    measured = f" ({value:,.0f}{tail})" if value is not None else ""
    return ExtractionError(
        ErrorCategory.VALIDATION,
        f"{what}{measured} exceeds the limit of {limit:,.0f}{tail} (setting STRATAFLOW_{setting.upper()})",
    )
