"""Shared fixtures: a fresh Strataflow on SQLite and on the real PostgreSQL, per test.

PostgreSQL runs at 127.0.0.1:5432 (database `test`). Each pytest worker gets
its own schema, migrated once; every test starts from empty tables.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from strataflow.app import create_app
from strataflow.config import Settings
from strataflow.engine.runners.local import LocalRunner
from strataflow.runtime import Runtime, open_runtime
from strataflow.store.db import Database
from strataflow.store.migrate import upgrade_to_head
from strataflow.store.tables import Base
from tests import scheduling

ADMIN_KEY = "sk_test_admin_key_0123456789abcdef"
PG_DSN = os.environ.get("STRATAFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgres"]


def _pg_schema() -> str:
    # Unique per process: parallel runs (a developer beside CI, two worktrees) never share tables.
    return f"sf_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A private schema on the machine's PostgreSQL, dropped at the end."""
    schema = _pg_schema()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    host_part = PG_DSN.split("://", 1)[1]
    yield f"postgresql+psycopg://{host_part}?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(scope="session")
def pg_database(pg_url: str) -> Iterator[Database]:
    """The worker's schema, migrated once: each test only empties its tables (a whole runtime
    opened to do that cost a migration check, a bootstrap and an index connection per test)."""
    database = Database(pg_url)
    upgrade_to_head(database)
    yield database
    database.dispose()


def _truncate_all(database: Database) -> None:
    """Empty every table and restart its ids, as a fresh database has them.

    DELETE, children first, then the sequences back to 1: on the few rows a test leaves, ~0.05 s
    where TRUNCATE of the 30-odd tables (new files for each) took ~0.3-0.5 s, before every test."""
    try:
        with database.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
            conn.execute(
                text(
                    "SELECT setval(format('%I.%I', schemaname, sequencename), 1, false)"
                    " FROM pg_sequences WHERE schemaname = current_schema()"
                )
            )
    except (IntegrityError, ProgrammingError):  # a cycle of references, a table a test dropped
        upgrade_to_head(database)
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with database.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated once per test process. Running every migration took ~0.3 s per test;
    a copy of the result is the same schema (tests/api/test_migrations.py checks it) for ~1 ms."""
    path = tmp_path_factory.mktemp("sqlite-template") / "strataflow.db"
    database = Database(f"sqlite:///{path}")
    upgrade_to_head(database)
    database.dispose()
    with closing(sqlite3.connect(path)) as conn:  # everything into the main file: the copy takes only it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def seed_sqlite(settings: Settings, template: Path) -> None:
    """Put the migrated template where a fresh runtime on these settings keeps its SQLite file."""
    target = settings.data_dir / "strataflow.db"
    if not target.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    database_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    return Settings(data_dir=tmp_path / "data", database_url=database_url, api_key=ADMIN_KEY, task_poll_interval_s=0.05)


@pytest.fixture(scope="session")
def shared_runner() -> Iterator[LocalRunner]:
    """One worker pool per test process: its models load once, whatever the test's database."""
    runner = LocalRunner(processes=1, torch_threads=1)
    yield runner
    runner.close()


@pytest.fixture
def runtime(settings: Settings, shared_runner: LocalRunner, request: pytest.FixtureRequest) -> Iterator[Runtime]:
    if not settings.database_url:
        seed_sqlite(settings, request.getfixturevalue("sqlite_template"))
    elif settings.database_url == request.getfixturevalue("pg_url"):
        _truncate_all(request.getfixturevalue("pg_database"))  # empty; open_runtime bootstraps afresh
    else:  # a database of the test's own: migrated by a first runtime, then emptied
        first = open_runtime(settings, shared_runner)
        _truncate_all(first.db)
        first.close()
    rt = open_runtime(settings, shared_runner)
    yield rt
    rt.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as test_client:
        test_client.headers.update({"Authorization": f"Bearer {ADMIN_KEY}"})
        yield test_client


@pytest.fixture
def namespace(client: TestClient) -> dict[str, Any]:
    response = client.post("/v1/namespaces", json={"namespace_name": "main", "feature_extractors": []})
    assert response.status_code == 200, response.text
    client.headers.update({"X-Namespace": "main"})
    return dict(response.json())


@pytest.fixture
def private_pg() -> Iterator[str]:
    """A PostgreSQL schema of the test's own, as a database URL: for tests whose several
    processes (API server, workers) share one database that nothing else touches."""
    schema = f"sf_private_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"postgresql+psycopg://{PG_DSN.split('://', 1)[1]}?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    scheduling.order_items(items)  # the longest files first (tests/scheduling.py says why)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return scheduling.make_scheduler(config, log) if config.getvalue("dist") == "loadfile" else None
