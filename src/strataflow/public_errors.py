"""What an unexpected exception may say in an API field (a task's, a batch's, a tier's, a document's).

A raw exception text or traceback can hold server file paths, SQL, or another tenant's
names; it belongs in the server log, where the operator reads it, and never in a field a
client reads. A domain error (`StrataflowError`) is written for clients and passes as is.
"""

from __future__ import annotations

from strataflow.errors import StrataflowError


def internal_error_message(exc: BaseException, what: str) -> str:
    """A clear line for clients about `exc` raised while doing `what`; the details stay in the log."""
    if isinstance(exc, StrataflowError):
        return exc.message
    return f"{what} failed with an internal error ({type(exc).__name__}); the server log has the details"
