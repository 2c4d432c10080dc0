"""Turning what media libraries raise into the contract's categorised row failures.

Bad bytes are the caller's problem (VALIDATION: a retry will not help); a full
disk or memory is transient (RESOURCE); anything else is a RUNTIME failure.
"""

from __future__ import annotations

import errno
from pathlib import Path

from strataflow.extractors.base import ErrorCategory, ExtractionError, OutOfMemory


def invalid(message: str) -> ExtractionError:
    return ExtractionError(ErrorCategory.VALIDATION, message)


def require_file(path: object, what: str) -> Path:
    """The input must be a local, non-empty file; say plainly when it is not."""
    if not isinstance(path, Path):
        if isinstance(path, str) and path:
            path = Path(path)
        else:
            raise invalid(f"input '{what}' is missing or is not a file path")
    if not path.is_file():
        raise invalid(f"input '{what}' file does not exist: {path.name}")
    if path.stat().st_size == 0:
        raise invalid(f"input '{what}' is an empty file (0 bytes)")
    return path


def categorise(exc: BaseException, what: str) -> ExtractionError:
    """Map an unexpected exception from a media library to a row failure."""
    if isinstance(exc, ExtractionError):
        return exc
    if isinstance(exc, MemoryError):
        return OutOfMemory(ErrorCategory.RESOURCE, f"out of memory while processing {what}")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.ENOMEM):
        return ExtractionError(ErrorCategory.RESOURCE, f"{what}: {exc.strerror}")
    return ExtractionError(ErrorCategory.RUNTIME, f"{what} failed: {type(exc).__name__}: {exc}")
