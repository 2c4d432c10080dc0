"""Which vision–language checkpoints the operator installed, read from the models directory.

A model is a sub-folder of `STRATAFLOW_MODELS_DIR` (default `<data dir>/models`) holding a
Hugging Face `transformers` CLIP or SigLIP checkpoint: `config.json`, the weights as
safetensors, the image processor's config and the tokenizer's files. Its folder name is the
model's name; the name fixes the feature it writes (`vision_<name>`), so two collections
using one model share one vector space and one text tower answers queries for both.

Nothing here loads weights (encoder.py does): this module only reads small JSON files, so
the API can list models and check a collection's request without torch.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strataflow.errors import BadRequestError

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FAMILIES = {"clip": "clip", "siglip": "siglip"}  # config.json model_type -> family
WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
TOKENIZER_SETS = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("spiece.model",))
INFERENCE_PREFIX = "vision:"
OFF = "none"  # a collection's `vision_model: "none"`: no visual embedding, whatever the operator's default


class ModelNotInstalledError(BadRequestError):
    type = "ModelNotInstalledError"


class ModelFormatError(ValueError):
    """A folder that is not a usable CLIP/SigLIP checkpoint; the message says what is missing."""


@dataclass(frozen=True)
class VisionModelInfo:
    name: str
    path: Path
    family: str  # clip | siglip
    dimensions: int
    image_size: int
    fingerprint: str  # changes when the files change: part of the loaded-model cache key

    @property
    def feature_name(self) -> str:
        return feature_name(self.name)

    @property
    def inference_name(self) -> str:
        return INFERENCE_PREFIX + self.name

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "format": "transformers",
            "dimensions": self.dimensions,
            "image_size": self.image_size,
            "feature": self.feature_name,
            "extractors": ["image_extractor", "multimodal_extractor"],
            "path": str(self.path),
        }


def feature_name(model: str) -> str:
    """The output name of a model's embedding: `vision_` + the name in lower case, runs of other
    characters as one underscore (`ViT-B-32` -> `vision_vit_b_32`)."""
    return "vision_" + re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")


def model_of_inference(inference_name: str) -> str | None:
    """The vision model behind a vector index's `inference_name`, None for any other model."""
    return inference_name[len(INFERENCE_PREFIX) :] if inference_name.startswith(INFERENCE_PREFIX) else None


def check_name(name: str) -> str:
    if not MODEL_NAME.match(name):
        raise ModelFormatError(
            f"'{name}' is not a usable model name: 1-64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    return name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path.name} is unreadable ({exc})") from None
    if not isinstance(value, dict):
        raise ModelFormatError(f"{path.name} is not a JSON object")
    return value


def _dimensions(family: str, config: dict[str, Any]) -> tuple[int, int]:
    """(embedding dimensions, image side) from config.json, with transformers' own defaults."""
    vision = config.get("vision_config") or {}
    text = config.get("text_config") or {}
    image_size = int(vision.get("image_size", 224))
    if family == "clip":
        return int(config.get("projection_dim", 512)), image_size
    image_dims = int(vision.get("hidden_size", 768))
    text_dims = int(text.get("projection_size") or text.get("hidden_size", 768))
    if image_dims != text_dims:
        raise ModelFormatError(f"its image tower gives {image_dims} dimensions and its text tower {text_dims}")
    return image_dims, image_size


def _fingerprint(path: Path, files: list[Path]) -> str:
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for file in sorted(files):
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def checkpoint_files(path: Path) -> list[Path]:
    """The files of the checkpoint in `path` that loading needs (config, weights, processor, tokenizer)."""
    files = [path / "config.json"]
    index = path / "model.safetensors.index.json"
    if (path / "model.safetensors").is_file():
        files.append(path / "model.safetensors")
    elif index.is_file():
        shards = sorted(set((_read_json(index).get("weight_map") or {}).values()))
        missing = [s for s in shards if not (path / s).is_file() or "/" in s]
        if missing or not shards:
            raise ModelFormatError(f"the safetensors index names shards that are not there: {missing[:3]}")
        files += [index, *(path / s for s in shards)]
    else:
        raise ModelFormatError("no weights as safetensors (model.safetensors or model.safetensors.index.json)")
    processor = [path / f for f in PROCESSOR_FILES if (path / f).is_file()]
    if not processor:
        raise ModelFormatError("no image processor config (preprocessor_config.json or processor_config.json)")
    tokenizer = next((names for names in TOKENIZER_SETS if all((path / n).is_file() for n in names)), None)
    if tokenizer is None:
        raise ModelFormatError("no tokenizer (tokenizer.json, vocab.json + merges.txt, or spiece.model)")
    extras = [path / n for n in ("tokenizer_config.json", "special_tokens_map.json") if (path / n).is_file()]
    return files + processor + [path / n for n in tokenizer] + extras


def inspect_folder(path: Path, name: str | None = None) -> VisionModelInfo:
    """Describe the checkpoint in `path`, or raise ModelFormatError saying why it is not one."""
    if not path.is_dir():
        raise ModelFormatError(f"{path} is not a directory")
    if not (path / "config.json").is_file():
        raise ModelFormatError("no config.json (a Hugging Face transformers checkpoint folder is expected)")
    config = _read_json(path / "config.json")
    family = FAMILIES.get(str(config.get("model_type", "")))
    if family is None:
        raise ModelFormatError(
            f"model_type '{config.get('model_type')}' is not a CLIP or SigLIP model (supported: {sorted(FAMILIES)})"
        )
    files = checkpoint_files(path)
    dimensions, image_size = _dimensions(family, config)
    if dimensions < 1 or image_size < 1:
        raise ModelFormatError("config.json declares no usable dimensions")
    return VisionModelInfo(
        name or path.name, path.resolve(), family, dimensions, image_size, _fingerprint(path, files[1:])
    )


@dataclass(frozen=True)
class Discovery:
    models: list[VisionModelInfo]
    problems: dict[str, str]  # folder name -> why it is not a usable model (shown by `models list`)


def discover(models_dir: Path) -> Discovery:
    """Every usable model in `models_dir`, by name; folders that are not models are skipped, folders
    that look like one but are broken are reported."""
    models: list[VisionModelInfo] = []
    problems: dict[str, str] = {}
    if not models_dir.is_dir():
        return Discovery(models, problems)
    for entry in sorted(models_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir() or not (entry / "config.json").is_file():
            continue  # hidden (an import in progress) or not a transformers folder (Whisper's weights)
        try:
            models.append(inspect_folder(entry, check_name(entry.name)))
        except ModelFormatError as exc:
            if _is_transformers_config(entry / "config.json"):  # meant as a model: say what is wrong
                problems[entry.name] = str(exc)
    return Discovery(models, problems)


def _is_transformers_config(path: Path) -> bool:
    """A transformers config names its model_type; other tools' config.json (Whisper's CTranslate2 weights) do not."""
    try:
        return "model_type" in _read_json(path)
    except ModelFormatError:
        return True


def install_hint(name: str) -> str:
    return (
        f"put a CLIP or SigLIP checkpoint (a Hugging Face folder: config.json, model.safetensors, processor and "
        f"tokenizer files) in the server's models directory (STRATAFLOW_MODELS_DIR) with "
        f"`strataflow models import PATH --name {name}`"
    )


def find_model(models_dir: Path, name: str) -> VisionModelInfo:
    """The installed model `name`; an absent or broken one is a clear 400 saying how to install it."""
    folder = models_dir / name if MODEL_NAME.match(name) else None
    if folder is not None and folder.is_dir():
        try:
            return _cached_inspect(folder, name)
        except ModelFormatError as exc:
            raise ModelNotInstalledError(
                f"Vision model '{name}' is installed but unusable: {exc}; {install_hint(name)}",
                {"model": name, "problem": str(exc)},
            ) from None
    installed = [m.name for m in discover(models_dir).models]
    raise ModelNotInstalledError(
        f"Vision model '{name}' is not installed: {install_hint(name)}. "
        f"Installed: {', '.join(installed) if installed else 'none'}",
        {"model": name, "installed": installed},
    )


_INSPECTED: dict[tuple[str, int], VisionModelInfo] = {}
_INSPECT_LOCK = threading.Lock()


def _cached_inspect(folder: Path, name: str) -> VisionModelInfo:
    """inspect_folder, remembered until config.json changes (collection runs ask once per chunk)."""
    key = (str(folder), (folder / "config.json").stat().st_mtime_ns if (folder / "config.json").exists() else 0)
    with _INSPECT_LOCK:
        if key not in _INSPECTED:
            _INSPECTED[key] = inspect_folder(folder, name)
        return _INSPECTED[key]


# -- the process's models directory --------------------------------------------------------
# The API process and the scheduler describe collections (vector dimensions, the catalogue) from
# the models directory of their settings; `open_runtime` calls `configure`. Extraction itself is
# handed its directory in every call (ExtractContext.models_dir), so a worker needs neither.

_CONFIGURED: dict[str, Any] = {}


def configure(models_dir: Path, default_model: str | None) -> None:
    _CONFIGURED.update(models_dir=models_dir, default_model=default_model)


def models_dir() -> Path:
    configured = _CONFIGURED.get("models_dir")
    if isinstance(configured, Path):
        return configured
    from strataflow.config import Settings

    return Settings().models_dir


def default_model() -> str | None:
    if "models_dir" in _CONFIGURED:
        value = _CONFIGURED.get("default_model")
        return str(value) if value else None
    from strataflow.config import Settings

    return Settings().vision_model


def installed() -> list[VisionModelInfo]:
    return discover(models_dir()).models


def lookup(name: str) -> VisionModelInfo:
    return find_model(models_dir(), name)
