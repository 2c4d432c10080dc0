"""Unit-test fixtures: a migrated, empty database on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from strataflow.store.db import Database
from strataflow.store.migrate import upgrade_to_head
from strataflow.store.tables import Base


@pytest.fixture
def db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """`backend` (tests/conftest.py) runs the test once on SQLite and once on PostgreSQL."""
    if backend == "postgres":
        database = Database(request.getfixturevalue("pg_url"))
        upgrade_to_head(database)  # the worker's schema; a no-op once migrated
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with database.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        database = Database(f"sqlite:///{tmp_path / 'unit.sqlite'}")
        upgrade_to_head(database)
    yield database
    database.dispose()
