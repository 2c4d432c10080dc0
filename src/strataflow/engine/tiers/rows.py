"""What becomes of one manifest row in one collection's run: the classifier both paths share.

The local path (chunks through `overlap.ChunkRun`) and the Ray Data stage ask the
same questions in the same order: is the row this round's work (a retry round
runs only its failed rows), does it pass the collection's source filters, does
its object still exist. Only rows classified OK are extracted.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from strataflow.engine.manifest import ManifestRow

MISSING_OBJECT = "the object no longer exists in the bucket"


class RowStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    MISSING_INPUT = "missing_input"  # not this collection's kind of row: counted, not failed
    FILTERED = "filtered"  # left out by the collection's source filters
    SKIPPED = "skipped"  # not part of this round (a retry round runs only its failed rows)


def classify_row(
    row: ManifestRow, wanted: Collection[str] | None, allowed: Collection[str] | None
) -> tuple[RowStatus, str | None]:
    """The row's status before extraction, and the failure message when it already failed.

    `wanted`: the rows of this (retry) round, None for every row; `allowed`: the rows
    passing the source filters, None when the collection has none.
    """
    if wanted is not None and row.row_id not in wanted:
        return RowStatus.SKIPPED, None
    if allowed is not None and row.row_id not in allowed:
        return RowStatus.FILTERED, None
    if row.payload.get("missing"):
        return RowStatus.FAILED, MISSING_OBJECT
    return RowStatus.OK, None
