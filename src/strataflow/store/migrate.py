"""Apply alembic migrations at start-up, safely when several processes start at once."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from strataflow.store.db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x5354524154  # an arbitrary constant shared by every Strataflow process


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


@cache
def head_revisions() -> frozenset[str]:
    """The newest revision(s) of the migrations shipped with this code (read once per process)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def upgrade_to_head(database: Database) -> None:
    """Bring the schema to the newest revision. API and workers call this at start."""
    config = alembic_config()
    with database.engine.begin() as connection:
        if not database.is_sqlite:
            # Two processes starting together must not both run the same migration.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        # Already at head (every start but the first after an upgrade): one query, where alembic's
        # upgrade command loaded every migration script again to find nothing to do.
        if frozenset(MigrationContext.configure(connection).get_current_heads()) == head_revisions():
            return
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
