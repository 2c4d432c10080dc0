"""The extractor contract's values survive the trip to and from worker processes."""

from __future__ import annotations

import pickle

from strataflow.extractors.base import ErrorCategory, ExtractionError, RowResult


def test_row_failures_keep_their_category_across_pickling() -> None:
    result = RowResult(row_id="obj_1", error=ExtractionError(ErrorCategory.VALIDATION, "not a video"))
    back = pickle.loads(pickle.dumps(result))
    assert back.error is not None
    assert (back.error.category, back.error.message, back.failed) == (ErrorCategory.VALIDATION, "not a video", True)


def test_transient_categories() -> None:
    assert ErrorCategory.NETWORK.transient and ErrorCategory.RESOURCE.transient
    assert not ErrorCategory.VALIDATION.transient
