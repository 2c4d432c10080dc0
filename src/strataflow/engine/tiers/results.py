"""What running a collection over some rows produced: counts, documents and per-row failures.

Shared by every path that runs a collection (in process, the local pool, Ray
Data), so a failure reads the same whichever runner met it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from strataflow.extractors.base import ErrorCategory

# An absolute path of two or more parts, not inside a URL or a relative path.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s'\"/]+/)+([^\s'\"/]*)")


def public_message(message: str) -> str:
    """A failure message as clients see it: file paths (media libraries like to quote their
    scratch files) keep only their file name, so an error never tells a tenant where the
    server or a worker keeps its files."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "...", message)


@dataclass(frozen=True)
class RowFailure:
    source_id: str
    error_type: str  # an ErrorCategory value
    message: str

    def __post_init__(self) -> None:
        # Every failure a client will read passes here, whichever runner produced it.
        object.__setattr__(self, "message", public_message(self.message))

    @property
    def transient(self) -> bool:
        return ErrorCategory(self.error_type).transient


@dataclass
class CollectionRunResult:
    collection_id: str
    rows_processed: int = 0
    documents_written: int = 0
    document_ids: list[str] = field(default_factory=list)
    stale_documents_removed: int = 0
    failures: list[RowFailure] = field(default_factory=list)
    # Rows that do not carry this collection's input (a text collection meeting an image in a
    # mixed bucket): not this collection's work, so counted and skipped rather than failed.
    missing_input_ids: list[str] = field(default_factory=list)
    duration_ms: int = 0
    # Where the time went: reading inputs, extracting, building and writing documents.
    prepare_ms: float = 0.0
    extract_ms: float = 0.0
    write_ms: float = 0.0

    @property
    def failed_source_ids(self) -> list[str]:
        return [f.source_id for f in self.failures]

    def merge(self, other: CollectionRunResult) -> None:
        """Add what `other` (a later batch of the same collection) produced; `duration_ms` is the
        caller's, measured around the whole run."""
        self.rows_processed += other.rows_processed
        self.documents_written += other.documents_written
        self.document_ids += other.document_ids
        self.stale_documents_removed += other.stale_documents_removed
        self.failures += other.failures
        self.missing_input_ids += other.missing_input_ids
        self.prepare_ms += other.prepare_ms
        self.extract_ms += other.extract_ms
        self.write_ms += other.write_ms
