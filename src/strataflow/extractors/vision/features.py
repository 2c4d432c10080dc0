"""What image and video extractors share about a vision model: its feature, its parameter, its batched embedding.

A collection names the model in its parameters (`vision_model`); when it names none, the
collection request's `params.model` (the field Mixpeek uses to pick an extractor's model) and
then the operator's default (`STRATAFLOW_VISION_MODEL`) decide, once, at creation, and the
resolved name is stored with the collection's parameters. `"none"` switches it off.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import AliasChoices

from strataflow.extractors.base import (
    ErrorCategory,
    ExtractContext,
    ExtractedDocument,
    ExtractionError,
    VectorIndexSpec,
)
from strataflow.extractors.vision import catalog
from strataflow.extractors.vision.encoder import load_encoder

# `parameters.model` is read as `vision_model` too: the name other extractors (and Mixpeek) use for a model.
MODEL_ALIASES = AliasChoices("vision_model", "model")
PARAMETER_HELP = (
    "Installed CLIP/SigLIP model (`strataflow models list`) whose image tower embeds the {what}, as feature "
    "vision_<model>; text queries are embedded by its text tower (alias: model). Empty: the collection request's "
    "params.model, then the server's STRATAFLOW_VISION_MODEL; 'none': no visual embedding."
)


def chosen_model(value: str | None) -> str | None:
    """The model a parameter value names, or None for none."""
    return None if value is None or value.strip().lower() in ("", catalog.OFF) else value.strip()


def resolve_model(value: str | None, extractor_params: dict[str, Any] | None) -> str | None:
    """The value a new collection stores: its own choice, else params.model, else the operator's default."""
    if value is not None:
        return value
    requested = (extractor_params or {}).get("model")
    if isinstance(requested, str) and requested.strip():
        return requested.strip()
    return catalog.default_model()


def spec_for(info: catalog.VisionModelInfo, what: str) -> VectorIndexSpec:
    return VectorIndexSpec(
        info.feature_name,
        info.dimensions,
        info.inference_name,
        f"{info.family.upper()} image embedding ({info.name}) of the {what}; text queries use its text tower",
        query_inputs=("image", "text"),
    )


def vision_spec(value: str | None, what: str) -> list[VectorIndexSpec]:
    """The vision feature a parameter value asks for: none, or the installed model's (else a clear 400)."""
    name = chosen_model(value)
    return [] if name is None else [spec_for(catalog.lookup(name), what)]


def installed_specs(what: str) -> list[VectorIndexSpec]:
    """One feature per installed model (the catalogue shows a vision feature only when its model is there)."""
    return [spec_for(info, what) for info in catalog.installed()]


def model_for_extraction(name: str, context: ExtractContext) -> catalog.VisionModelInfo:
    """The model in the worker's models directory; one that vanished since the collection was made fails
    its rows as a dependency error, naming it."""
    directory: Path = context.models_dir or catalog.models_dir()
    try:
        return catalog.find_model(directory, name)
    except catalog.ModelNotInstalledError as exc:
        raise ExtractionError(ErrorCategory.DEPENDENCY, exc.message) from None


def embed_images(name: str, items: Sequence[tuple[ExtractedDocument, Image.Image]], context: ExtractContext) -> None:
    """Embed each item's image in batches and store the vector on its document, under the model's feature."""
    if not items:
        return
    info = model_for_extraction(name, context)
    encoder = load_encoder(info, context.device)
    vectors = encoder.encode_images([image for _, image in items], context.limits.vision_batch_size)
    for (document, _), vector in zip(items, vectors, strict=True):
        document.vectors[info.feature_name] = vector.tolist()
