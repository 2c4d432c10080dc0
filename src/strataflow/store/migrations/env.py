"""Alembic environment: runs against the connection handed in by `store.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from strataflow.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # `alembic` command line during development: STRATAFLOW_DATABASE_URL or a scratch SQLite
    url = config.get_main_option("sqlalchemy.url") or "sqlite:///.strataflow/strataflow.db"
    with create_engine(url).begin() as conn:
        _run(conn)
