"""Column types shared by the tables, portable across SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import NullType, TypeDecorator

from strataflow.statuses import Status

# JSONB on PostgreSQL (indexable, native ordering), JSON text on SQLite.
JsonType = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)


class StatusType(TypeDecorator[Status]):
    """A status column: VARCHAR(32) in both databases, the `Status` enum in Python.

    Rows read back as `Status` members. Values bound in queries may be members or
    plain strings (a user's filter on `status` with an unknown value matches nothing
    rather than failing), so the column stays a string in the schema: no migration.
    """

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return value.value if isinstance(value, Status) else str(value)

    def process_result_value(self, value: Any, dialect: Any) -> Status | None:
        return None if value is None else Status(value)


class json_value(FunctionElement[Any]):
    """The value at a JSON path, in the database's native JSON ordering (for sorting)."""

    type = NullType()
    inherit_cache = True

    def __init__(self, column: ColumnElement[Any], *path: str) -> None:
        self.path = path
        super().__init__(column)


@compiles(json_value, "sqlite")
def _json_value_sqlite(element: json_value, compiler: Any, **kw: Any) -> str:
    column = compiler.process(next(iter(element.clauses)), **kw)
    path = "$" + "".join(f'."{p}"' for p in element.path)
    return f"json_extract({column}, '{path.replace(chr(39), chr(39) * 2)}')"


@compiles(json_value, "postgresql")
def _json_value_pg(element: json_value, compiler: Any, **kw: Any) -> str:
    column = compiler.process(next(iter(element.clauses)), **kw)
    path = ",".join('"' + p.replace('"', '\\"') + '"' for p in element.path)
    return f"({column} #> '{{{path.replace(chr(39), chr(39) * 2)}}}')"
