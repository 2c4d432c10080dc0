"""The per-row loop every media extractor shares: scratch directory, stop checks, failures.

Each row works in its own directory under the job's `work_dir`. When a row
fails its directory is removed at once, so a broken file leaves nothing
behind; a row that succeeds keeps only the files its documents reference
(the engine stores them, then deletes the whole `work_dir`).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from strataflow.extractors.base import (
    DocumentBlob,
    ErrorCategory,
    ExtractContext,
    ExtractedDocument,
    ExtractionError,
    ExtractorInput,
    RowResult,
)
from strataflow.extractors.media.failures import categorise

RowWork = Callable[[ExtractorInput, Path], list[ExtractedDocument]]


def stopped() -> ExtractionError:
    # Transient: the row is whole and can simply run again later.
    return ExtractionError(ErrorCategory.RUNTIME, "extraction was stopped before this row finished")


def row_dir(work_dir: Path, extractor: str, row_id: str) -> Path:
    """A fresh directory for one row, named by a digest (any row id is a safe path) plus a unique tail,
    so two rows with the same id never share or wipe each other's files."""
    digest = hashlib.sha256(row_id.encode()).hexdigest()[:16]
    parent = work_dir / extractor
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{digest}-", dir=parent))


def run_rows(rows: list[ExtractorInput], context: ExtractContext, extractor: str, work: RowWork) -> list[RowResult]:
    """One RowResult per row, in order; a failing row never stops the others."""
    results: list[RowResult] = []
    for row in rows:
        if context.should_stop():
            results.append(RowResult(row.row_id, error=stopped()))
            continue
        scratch = row_dir(context.work_dir, extractor, row.row_id)
        try:
            documents = work(row, scratch)
        except Exception as exc:  # noqa: BLE001 - one broken file must not take the other rows down
            shutil.rmtree(scratch, ignore_errors=True)
            results.append(RowResult(row.row_id, error=categorise(exc, f"{extractor} on row {row.row_id}")))
            continue
        prune_unreferenced(scratch, documents)
        results.append(RowResult(row.row_id, documents=documents))
    return results


def prune_unreferenced(scratch: Path, documents: list[ExtractedDocument]) -> None:
    """Delete intermediate files (full-size keyframes, renders) no document points at."""
    keep = {blob.path.resolve() for doc in documents for blob in doc.blobs}
    for path in sorted(scratch.rglob("*"), reverse=True):
        if path.is_file() and path.resolve() not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def blob(field: str, path: Path, role: str, kind: str, content_type: str) -> DocumentBlob:
    return DocumentBlob(field=field, path=path, role=role, type=kind, content_type=content_type)
