"""Where model files that must be assembled on disk (Whisper's joined weights) are kept."""

from __future__ import annotations

from pathlib import Path


def default_models_dir() -> Path:
    """`<data dir>/models`; the engine can pass another directory to the extractor instead."""
    from strataflow.config import Settings

    return Settings().data_dir.resolve() / "models"
