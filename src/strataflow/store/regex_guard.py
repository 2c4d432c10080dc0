"""Regex filters may run untrusted patterns: bound their time and turn their failures into 400s.

A `regex` filter condition is evaluated by the database: by SQLite through our
REGEXP function (the `regex` module, which takes a timeout), by PostgreSQL with
its own engine. Both can be made to work for hours: `^(a+)(a+)(a+)\\1\\2\\3$` on
700 characters keeps PostgreSQL busy for minutes, holding a worker thread and
a connection. So:

- SQLite: each value gets at most `VALUE_TIMEOUT_S`, and one statement at most
  `STATEMENT_BUDGET_S` over all its rows (a per-value cap alone still allows
  rows x cap).
- PostgreSQL: a statement that matches a regex runs under `SET LOCAL
  statement_timeout`, restored right after, so other statements keep theirs.

An invalid pattern, a timeout or a cancelled statement becomes a BadRequestError
(400) that names the cause, instead of an opaque 500.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from typing import Any

import regex
from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext

from strataflow.errors import BadRequestError

VALUE_TIMEOUT_S = 0.25
STATEMENT_BUDGET_S = 5.0
# PostgreSQL spells a regex match ` ~ `, ` ~* `, ` !~ ` or ` !~* ` (SQLAlchemy's regexp_match);
# nothing else we emit contains these tokens, and values are bound parameters, never in the text.
_PG_REGEX_OPERATOR = re.compile(r" !?~\*? ")
_PG_INVALID_REGEX = "2201B"
_PG_QUERY_CANCELED = "57014"


class _State(threading.local):
    # SQLite calls REGEXP in the thread that runs the statement, so thread-local state is
    # per statement; sqlite3 drops the Python exception, so its cause is kept here.
    deadline: float = 0.0
    failure: str | None = None


_state = _State()


def sqlite_regexp(pattern: str | None, value: Any) -> bool | None:
    """REGEXP for SQLite: `regex` with a per-value timeout inside the statement's budget."""
    if pattern is None or value is None:
        return None
    remaining = _state.deadline - time.monotonic() if _state.deadline else STATEMENT_BUDGET_S
    try:
        if remaining <= 0:
            raise TimeoutError("statement budget spent")
        return regex.search(pattern, str(value), timeout=min(VALUE_TIMEOUT_S, remaining)) is not None
    except TimeoutError:
        _state.failure = "timeout"
        raise
    except regex.error as exc:
        _state.failure = f"invalid: {exc}"
        raise


def _too_slow(limit: str) -> BadRequestError:
    return BadRequestError(
        f"The regex filter took too long to evaluate (limit {limit}); use a simpler pattern "
        "(nested or back-referenced repetition backtracks without end)",
        {"operator": "regex", "reason": "timeout"},
    )


def _invalid(detail: str) -> BadRequestError:
    return BadRequestError(
        f"The regex filter is not a valid regular expression: {detail}",
        {"operator": "regex", "reason": "invalid_pattern"},
    )


def install(engine: Engine, is_sqlite: bool) -> None:
    """Attach the guards to `engine` (SQLite also needs `sqlite_regexp` registered per connection)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if is_sqlite:
            _state.deadline = time.monotonic() + STATEMENT_BUDGET_S
            _state.failure = None
        elif _PG_REGEX_OPERATOR.search(statement):
            cursor.execute(f"SET LOCAL statement_timeout = {int(STATEMENT_BUDGET_S * 1000)}")
            context._strataflow_regex = True

    if not is_sqlite:

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            if getattr(context, "_strataflow_regex", False):
                # a cursor of its own: running this on `cursor` would discard the rows just read
                cursor.connection.execute("SET LOCAL statement_timeout TO DEFAULT")

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        original = context.original_exception
        if is_sqlite:
            failure, _state.failure = _state.failure, None
            if failure is None or not isinstance(original, sqlite3.OperationalError):
                return
            if failure == "timeout":
                raise _too_slow(f"{VALUE_TIMEOUT_S:g} s per value, {STATEMENT_BUDGET_S:g} s per query") from None
            raise _invalid(failure.removeprefix("invalid: ")) from None
        state = getattr(original, "sqlstate", None)
        if state == _PG_INVALID_REGEX:
            raise _invalid(str(original).splitlines()[0].removeprefix("invalid regular expression: ")) from None
        if state == _PG_QUERY_CANCELED and getattr(context.execution_context, "_strataflow_regex", False):
            raise _too_slow(f"{STATEMENT_BUDGET_S:g} s per query") from None
