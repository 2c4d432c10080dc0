"""Installing a checkpoint into the models directory: copy, verify, then publish under its name.

The files are copied into a hidden staging folder beside the target (discovery skips hidden
folders), checked byte for byte against the source, loaded, and run once on a test image and a
test text; only a checkpoint that passes all of it is renamed into place, in one step. A
failed import leaves nothing behind, and an installed model is never overwritten.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from strataflow.extractors.vision.catalog import (
    ModelFormatError,
    VisionModelInfo,
    check_name,
    checkpoint_files,
    inspect_folder,
)
from strataflow.extractors.vision.openclip import convert, is_openclip_folder

log = logging.getLogger("strataflow.vision")


class ImportFailed(Exception):
    """The checkpoint was not installed; the message says why."""


@dataclass(frozen=True)
class Verification:
    image_shape: tuple[int, ...]
    text_shape: tuple[int, ...]


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(info: VisionModelInfo) -> Verification:
    """Load the checkpoint and embed one image and one text: both must be finite unit vectors of its size."""
    from strataflow.extractors.vision.encoder import VisionEncoder  # torch: only when verifying

    try:
        encoder = VisionEncoder(info, "cpu")
        gradient = np.linspace(0, 255, 64 * 48 * 3, dtype=np.float32).reshape(48, 64, 3).astype(np.uint8)
        image_vectors = encoder.encode_images([Image.fromarray(gradient)])
        text_vectors = encoder.encode_texts(["a photo"])
    except Exception as exc:  # noqa: BLE001 - whatever transformers raises, the checkpoint does not load
        raise ImportFailed(f"the checkpoint does not load or run: {type(exc).__name__}: {exc}") from None
    for what, vectors in (("image", image_vectors), ("text", text_vectors)):
        if vectors.shape != (1, info.dimensions) or not np.all(np.isfinite(vectors)):
            raise ImportFailed(
                f"its {what} tower gives vectors of shape {vectors.shape}, not (1, {info.dimensions}) finite values"
            )
    return Verification(tuple(image_vectors.shape), tuple(text_vectors.shape))


def publish(staging: Path, models_dir: Path, name: str) -> VisionModelInfo:
    """Verify the checkpoint in `staging` (a folder inside `models_dir`) and rename it to `name`."""
    try:
        verify(inspect_folder(staging, name))
        target = models_dir / name
        if target.exists():
            raise ImportFailed(f"a model named '{name}' is already installed; choose another --name")
        staging.rename(target)
    except ModelFormatError as exc:
        raise ImportFailed(f"not a usable CLIP/SigLIP checkpoint: {exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return inspect_folder(target, name)


def _import_openclip(source: Path, models_dir: Path, name: str | None) -> VisionModelInfo:
    try:
        name = check_name(name or source.name)
    except ModelFormatError as exc:
        raise ImportFailed(str(exc)) from None
    if (models_dir / name).exists():
        raise ImportFailed(f"a model named '{name}' is already installed; choose another --name")
    staging = staging_dir(models_dir, name)
    try:
        convert(source, staging)
    except ModelFormatError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ImportFailed(f"not a usable OpenCLIP checkpoint: {exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    info = publish(staging, models_dir, name)
    log.info("OpenCLIP model converted and imported", extra={"model": name, "source": str(source)})
    return info


def staging_dir(models_dir: Path, name: str) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".import-{name}-", dir=models_dir))


def import_model(source: Path, models_dir: Path, name: str | None = None) -> VisionModelInfo:
    """Copy the checkpoint folder `source` into `models_dir` as `name` (default: the folder's name).
    An OpenCLIP checkpoint is converted to a transformers CLIP folder instead of copied."""
    if is_openclip_folder(source):
        return _import_openclip(source, models_dir, name)
    try:
        name = check_name(name or source.name)
        files = checkpoint_files(source) if source.is_dir() else None
        if files is None:
            raise ModelFormatError(f"{source} is not a directory")
        inspect_folder(source, name)
    except ModelFormatError as exc:
        raise ImportFailed(f"not a usable CLIP/SigLIP checkpoint: {exc}") from None
    if (models_dir / name).exists():
        raise ImportFailed(f"a model named '{name}' is already installed; choose another --name")
    staging = staging_dir(models_dir, name)
    try:
        for file in files:
            copied = staging / file.name
            shutil.copyfile(file, copied)
            if _digest(copied) != _digest(file):
                raise ImportFailed(f"{file.name} changed while it was copied")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    info = publish(staging, models_dir, name)
    log.info("vision model imported", extra={"model": name, "source": str(source), "dimensions": info.dimensions})
    return info
