"""The alembic migrations build exactly the schema the tables declare, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from strataflow.store.tables import Base


def test_migrations_match_the_tables(runtime: Any) -> None:
    with runtime.db.engine.connect() as connection:
        drift = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert drift == [], f"a table changed without a migration: {drift}"
