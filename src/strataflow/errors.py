"""Domain errors. Raised by services; mapped once to HTTP in `api/errors.py`."""

from __future__ import annotations

from typing import Any


class StrataflowError(Exception):
    """Base of every error a client may see. `type` is the stable machine id."""

    status_code = 500
    type = "InternalServerError"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequestError(StrataflowError):
    status_code = 400
    type = "BadRequestError"


class UnauthorizedError(StrataflowError):
    status_code = 401
    type = "UnauthorizedError"


class ForbiddenError(StrataflowError):
    status_code = 403
    type = "ForbiddenError"


class NotFoundError(StrataflowError):
    status_code = 404
    type = "NotFoundError"


class AlreadyExistsError(StrataflowError):
    status_code = 409
    type = "AlreadyExistsError"


class ConflictError(StrataflowError):
    status_code = 409
    type = "ConflictError"


class PayloadTooLargeError(StrataflowError):
    status_code = 413
    type = "PayloadTooLargeError"


class ValidationError(StrataflowError):
    status_code = 422
    type = "ValidationError"


class InvalidTransitionError(ConflictError):
    """A status change the state machine does not allow."""

    type = "InvalidStateTransitionError"


def not_found(kind: str, identifier: str) -> NotFoundError:
    return NotFoundError(f"{kind} '{identifier}' not found", {"resource": kind, "identifier": identifier})
