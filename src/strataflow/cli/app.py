"""The one typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Strataflow: a self-hosted multimodal data engine.", no_args_is_help=True, pretty_exceptions_enable=False
)
