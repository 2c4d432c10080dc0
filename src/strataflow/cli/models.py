"""`strataflow models list | import | pull`: the vision–language checkpoints this server can use.

These act on the models directory (STRATAFLOW_MODELS_DIR, default <data dir>/models) of the
machine they run on: run them where the server and its workers read that directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from strataflow.cli.admin import DataDir, _settings
from strataflow.cli.app import app
from strataflow.errors import BadRequestError

models_app = typer.Typer(help="Vision–language models (CLIP, SigLIP) the extractors can use.", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console()

ModelsDir = Annotated[
    Path | None,
    typer.Option("--models-dir", help="Models directory (env STRATAFLOW_MODELS_DIR).", show_default=False),
]


def _models_dir(data_dir: Path | None, models_dir: Path | None) -> Path:
    settings = _settings(data_dir, models_dir_path=models_dir)
    return settings.models_dir


@models_app.command("list")
def list_models(data_dir: DataDir = None, models_dir: ModelsDir = None) -> None:
    """Installed models: family, dimensions, the feature they write and the extractors that use them."""
    from strataflow.extractors.vision.catalog import discover

    root = _models_dir(data_dir, models_dir)
    found = discover(root)
    table = Table(title=f"vision models in {root}", title_justify="left")
    for header in ("name", "family", "dimensions", "image size", "feature", "extractors"):
        table.add_column(header, no_wrap=header in ("name", "feature"))
    for info in found.models:
        table.add_row(
            info.name,
            info.family,
            str(info.dimensions),
            str(info.image_size),
            info.feature_name,
            "image_extractor, multimodal_extractor",
        )
    console.print(table)
    if not found.models:
        console.print("no vision model installed: `strataflow models import PATH --name NAME` installs one")
    for folder, problem in found.problems.items():
        console.print(f"[yellow]skipped[/yellow] {folder}: {problem}", highlight=False)


@models_app.command("import")
def import_command(
    path: Annotated[
        Path, typer.Argument(help="A Hugging Face CLIP/SigLIP checkpoint folder, or an OpenCLIP (ViT) one.")
    ],
    name: Annotated[str | None, typer.Option("--name", help="Name to install it as (default: folder name).")] = None,
    data_dir: DataDir = None,
    models_dir: ModelsDir = None,
) -> None:
    """Copy a checkpoint into the models directory, check every file and run it once, then install it."""
    from strataflow.extractors.vision.importing import ImportFailed, import_model

    root = _models_dir(data_dir, models_dir)
    try:
        info = import_model(path.expanduser(), root, name)
    except ImportFailed as exc:
        raise BadRequestError(f"model not imported: {exc}") from None
    console.print(
        f"installed [bold]{info.name}[/bold] ({info.family}, {info.dimensions} dimensions, "
        f"{info.image_size} px images) in {info.path}; collections use it with parameters "
        f'{{"vision_model": "{info.name}"}}, and it writes feature {info.feature_name}',
        highlight=False,
    )


@models_app.command("pull")
def pull_command(
    repository: Annotated[str, typer.Argument(help="Hub repository, e.g. openai/clip-vit-base-patch32.")],
    name: Annotated[str | None, typer.Option("--name", help="Name to install it as (default: the repo's).")] = None,
    revision: Annotated[str, typer.Option(help="Branch, tag or commit.")] = "main",
    data_dir: DataDir = None,
    models_dir: ModelsDir = None,
) -> None:
    """Download a checkpoint from the model hub and install it (off unless STRATAFLOW_MODELS_PULL=true)."""
    from strataflow.extractors.vision.pull import PullFailed, pull_model

    settings = _settings(data_dir, models_dir_path=models_dir)
    try:
        info = pull_model(settings, repository, name, revision, progress=lambda line: console.print(line))
    except PullFailed as exc:
        raise BadRequestError(f"model not pulled: {exc}") from None
    console.print(
        f"installed [bold]{info.name}[/bold] ({info.family}, {info.dimensions} dimensions) in {info.path}",
        highlight=False,
    )
