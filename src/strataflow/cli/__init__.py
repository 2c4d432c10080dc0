"""The `strataflow` command line.

Server-side commands (`serve`, `orgs`, `keys`, `models`) act on the data directory; client commands
(`ingest`, `watch`, `search`) talk to a running server by URL and API key, so they work
against a remote deployment as well."""

from __future__ import annotations

from rich.console import Console

from strataflow.cli import admin as _admin  # noqa: F401  (registers serve, orgs, keys)
from strataflow.cli import models as _models  # noqa: F401  (registers models list, import, pull)
from strataflow.cli.app import app
from strataflow.cli.client import ApiError
from strataflow.cli.ingest import ingest
from strataflow.cli.search import search
from strataflow.cli.watch import watch
from strataflow.errors import StrataflowError

app.command()(ingest)
app.command()(watch)
app.command()(search)

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: a refused request or a bad setting prints one line, never a traceback."""
    err = Console(stderr=True)
    try:
        app()
    except (StrataflowError, ApiError) as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise SystemExit(1) from None
