"""`strataflow serve | worker | orgs | keys`: commands that run the server or act on its data directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from strataflow.cli.app import app
from strataflow.config import Settings

if TYPE_CHECKING:  # imported when a command runs: the runtime loads the whole server
    import asyncio

    from strataflow.store.db import Database

orgs_app = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (env STRATAFLOW_DATA_DIR).", show_default=False)
]


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)  # type: ignore[arg-type]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Start the API with its background workers (embedded SQLite by default)."""
    import uvicorn

    from strataflow.app import create_app
    from strataflow.logs import configure
    from strataflow.runtime import open_runtime

    settings = _settings(data_dir, host=host, port=port)
    configure(settings.log_level, settings.log_json)
    runtime = open_runtime(settings)
    base = settings.base_url
    console.print(f"[bold]Strataflow[/bold] listening on {base}")
    console.print(f"  API docs:  {base}/docs")
    console.print(f"  data dir:  {settings.data_dir.resolve()}")
    console.print(f"  database:  {'SQLite (embedded)' if settings.is_sqlite else 'PostgreSQL'}")
    if settings.api_only:
        console.print("  engine:    off (STRATAFLOW_API_ONLY): `strataflow worker` processes run batches and jobs")
    if runtime.first_key is not None and settings.api_key is None:
        console.print(f"  admin API key written to {settings.admin_key_path.resolve()} (mode 0600)")
    elif settings.admin_key_path.exists():
        console.print(f"  admin API key: see {settings.admin_key_path.resolve()}")
    else:
        console.print("  admin API key: the one given in STRATAFLOW_API_KEY on first start")
    http, loop = _http_stack()
    console.print(f"  HTTP:      {'httptools' if isinstance(http, type) else http} on {loop}")
    uvicorn.run(
        create_app(settings, runtime=runtime, run_background=not settings.api_only),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        http=http,
        loop=loop,
    )


def _http_stack() -> tuple[type[asyncio.Protocol] | str, str]:
    """httptools and uvloop (pinned in pyproject.toml) halve the CPU a request body costs on its way
    to the app (issue 24: 2.4 against 4.4 ms per MiB with h11 on asyncio, measured in bench/README.md),
    and the httptools protocol is ours, which passes a body on without uvicorn's two copies of it
    (strataflow.api.http_protocol). Chosen by name, so a missing one is said at start-up instead of
    uvicorn's silent "auto" fallback."""
    from importlib.util import find_spec

    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    if find_spec("httptools") is None or loop != "uvloop":
        err.print("  warning: httptools or uvloop is not installed: uploads are slower (pip install -e .)")
    if find_spec("httptools") is None:
        return "h11", loop
    from strataflow.api.http_protocol import PassThroughBodyProtocol

    return PassThroughBodyProtocol, loop


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run batches without the API: the tier scheduler, its runner and background jobs.

    Reads the same settings as `serve`. Point several workers (and API replicas) at one
    PostgreSQL and one S3: they claim tiers under leases, never the same one twice.
    Stops cleanly on SIGTERM or Ctrl-C, handing a running tier back at once.
    """
    import signal
    import threading

    from strataflow.logs import configure
    from strataflow.runtime import open_runtime

    settings = _settings(data_dir, api_only=False)  # a worker exists to run the engine, whatever replicas say
    configure(settings.log_level, settings.log_json)
    if settings.is_sqlite:
        err.print(
            "[yellow]note:[/yellow] a worker on SQLite shares the data dir with one server at most; "
            "set STRATAFLOW_DATABASE_URL to PostgreSQL to scale out"
        )
    runtime = open_runtime(settings)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runtime.start_background()
    console.print(
        f"[bold]Strataflow worker[/bold] {runtime.scheduler.owner}: engine {settings.engine}, "
        f"database {'SQLite' if settings.is_sqlite else 'PostgreSQL'}, "
        f"blobs {settings.blob_url or settings.blob_dir}"
    )
    while not stopping.wait(1.0):  # a bounded wait: signal handlers run between waits
        pass
    console.print("stopping: finishing the current chunk, handing running tiers back")
    runtime.close()
    console.print("stopped")


@orgs_app.command("create")
def orgs_create(name: str, data_dir: DataDir = None) -> None:
    """Create an organization and print its first API key (shown once)."""
    from strataflow.services.tenancy.auth import create_organization, issue_key

    db = _database(data_dir)
    with db.transaction() as session:
        org = create_organization(session, name)
        issued = issue_key(session, org, "admin")
    console.print(f"organization {org.name} ({org.org_id}) created")
    console.print(f"API key (shown once): {issued.plaintext}")


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option("--org", help="Organization name.")] = "default",
    name: Annotated[str, typer.Option(help="A label for the key.")] = "key",
    data_dir: DataDir = None,
) -> None:
    """Issue a new API key for an organization (printed once)."""
    from strataflow.services.tenancy.auth import get_organization, issue_key

    db = _database(data_dir)
    with db.transaction() as session:
        issued = issue_key(session, get_organization(session, org), name)
    console.print(f"key {issued.key_id} for {issued.org_name} (shown once): {issued.plaintext}")


@keys_app.command("list")
def keys_list(
    org: Annotated[str | None, typer.Option("--org", help="Only this organization.")] = None,
    data_dir: DataDir = None,
) -> None:
    """List API keys (ids and prefixes, never the keys)."""
    from strataflow.services.tenancy.auth import list_keys

    db = _database(data_dir)
    with db.read_session() as session:
        rows = list_keys(session, org)
        table = Table()
        table.add_column("key id", no_wrap=True)  # ids are copied into `keys revoke`: never wrap them
        table.add_column("organization", no_wrap=True)
        for header in ("name", "prefix", "created", "revoked"):
            table.add_column(header)
        for key, organization in rows:
            table.add_row(
                key.key_id,
                organization.name,
                key.name,
                key.key_prefix + "…",
                str(key.created_at)[:19],
                str(key.revoked_at)[:19] if key.revoked_at else "",
            )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    from strataflow.services.tenancy.auth import revoke_key

    db = _database(data_dir)
    with db.transaction() as session:
        revoke_key(session, key_id)
    console.print(f"key {key_id} revoked")


def _database(data_dir: Path | None) -> Database:
    """The database alone, migrated and bootstrapped as the server's first start would leave it.

    Organization and key commands need nothing else: opening the whole runtime would start an
    engine pool and the index for a one-row write (and cost seconds of imports).
    """
    from strataflow.services.tenancy.auth import bootstrap
    from strataflow.store.db import Database
    from strataflow.store.migrate import upgrade_to_head

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    upgrade_to_head(db)
    with db.transaction() as session:
        bootstrap(session, settings.admin_key_path, settings.api_key)
    return db
