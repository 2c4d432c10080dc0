"""`image_extractor` v1: one document per image.

An image becomes: its size and EXIF, a thumbnail, the text on it (Tesseract)
plus its descriptive EXIF text, a MiniLM embedding of that text (so text
queries find images that carry or describe the words), a colour/edge
descriptor for image-to-image look-alikes, and perceptual hashes for
near-duplicates. No image–text model ships with any package this project can
install (see docs/extractors-media.md); when the operator installs a CLIP or
SigLIP checkpoint (docs/vision-models.md) and the collection names it, its
image tower adds a visual embedding as its own feature (`vision_<model>`),
which text queries reach through the same model's text tower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from PIL import Image
from pydantic import Field

from strataflow.extractors.base import (
    ExtractContext,
    ExtractedDocument,
    Extractor,
    ExtractorInput,
    ExtractorParams,
    InputField,
    OutputField,
    Resources,
    RowResult,
    VectorIndexSpec,
)
from strataflow.extractors.limits import ExtractionLimits
from strataflow.extractors.media.failures import categorise, require_file
from strataflow.extractors.media.image_file import descriptive_text, exif_fields, open_image
from strataflow.extractors.media.ocr import read_text
from strataflow.extractors.media.rows import blob, run_rows
from strataflow.extractors.media.visual import (
    DESCRIPTOR_DIMENSIONS,
    DESCRIPTOR_NAME,
    perceptual_hashes,
    visual_descriptor,
)
from strataflow.extractors.text_models import TEXT_MODELS, embed_texts
from strataflow.extractors.vision.encoder import prepare_image
from strataflow.extractors.vision.features import (
    MODEL_ALIASES,
    PARAMETER_HELP,
    chosen_model,
    embed_images,
    installed_specs,
    resolve_model,
    vision_spec,
)

_TEXT_MODEL = TEXT_MODELS["minilm"]


class ImageParams(ExtractorParams):
    extractor_type: Literal["image_extractor"] = "image_extractor"
    enable_thumbnails: bool = True
    thumbnail_size: int = Field(256, ge=32, le=1024, description="Longest side of the thumbnail, pixels.")
    run_ocr: bool = True
    ocr_language: str = Field("eng", description="Tesseract language pack(s), e.g. 'eng' or 'eng+deu'.")
    run_text_embedding: bool = True
    run_visual_descriptor: bool = True
    run_perceptual_hash: bool = True
    vision_model: str | None = Field(
        None, validation_alias=MODEL_ALIASES, description=PARAMETER_HELP.format(what="image")
    )


class ImageExtractor(Extractor[ImageParams]):
    name: ClassVar[str] = "image_extractor"
    version: ClassVar[str] = "v1"
    description: ClassVar[str] = (
        "One document per image: size, EXIF, thumbnail, OCR text with a MiniLM text embedding, a colour/edge "
        "descriptor for look-alike search and perceptual hashes for near-duplicates; with an installed CLIP/SigLIP "
        "model (parameter vision_model), its image embedding, which text and image queries can search."
    )
    params_model: ClassVar[type[ExtractorParams]] = ImageParams
    inputs: ClassVar[list[InputField]] = [InputField("image", "image", description="An image file.")]
    # Tesseract and the descriptor are CPU-only; a vision model (and MiniLM) use a GPU where Ray has one.
    resources: ClassVar[Resources] = Resources(num_cpus=1.0, num_gpus=0.25, memory_mb=1536)

    def complete_parameters(self, params: ImageParams, extractor_params: dict[str, Any] | None) -> ImageParams:
        return params.model_copy(update={"vision_model": resolve_model(params.vision_model, extractor_params)})

    def output_fields(self, params: ImageParams) -> list[OutputField]:
        fields = [
            OutputField("width", "integer", "Pixels, after EXIF orientation."),
            OutputField("height", "integer", "Pixels, after EXIF orientation."),
            OutputField("format", "string", "Decoder's format name (JPEG, PNG, ...)."),
            OutputField("exif", "object", "EXIF tags by name, JSON values."),
        ]
        if params.enable_thumbnails:
            fields.append(OutputField("thumbnail_url", "image", "JPEG thumbnail."))
        if params.run_ocr:
            fields.append(OutputField("ocr_text", "text", "Text read from the image (Tesseract)."))
        fields.append(OutputField("text", "text", "OCR text plus descriptive EXIF text: what is embedded."))
        if params.run_perceptual_hash:
            fields.append(OutputField("perceptual_hash", "string", "pHash, 64 bits as hex."))
            fields.append(OutputField("difference_hash", "string", "dHash, 64 bits as hex."))
        return fields

    def vector_indexes(self, params: ImageParams) -> list[VectorIndexSpec]:
        # The visual embedding first: it is the collection's primary feature, what a plain search box searches.
        specs = vision_spec(params.vision_model, "image")
        if params.run_text_embedding:
            specs.append(
                VectorIndexSpec(
                    "text_embedding",
                    _TEXT_MODEL.dimensions,
                    _TEXT_MODEL.model_name,
                    "Sentence embedding of the text on and about the image",
                )
            )
        if params.run_visual_descriptor:
            specs.append(
                VectorIndexSpec(
                    "visual_descriptor",
                    DESCRIPTOR_DIMENSIONS,
                    DESCRIPTOR_NAME,
                    "Colour and edge histogram for look-alike images; not a semantic embedding",
                )
            )
        return specs

    def possible_vector_indexes(self) -> list[VectorIndexSpec]:
        return installed_specs("image") + self.vector_indexes(ImageParams.model_validate({}))

    def extract(self, rows: list[ExtractorInput], params: ImageParams, context: ExtractContext) -> list[RowResult]:
        model = chosen_model(params.vision_model)
        pending: list[tuple[ExtractedDocument, Image.Image]] = []  # waiting for the batched vision pass

        def work(row: ExtractorInput, scratch: Path) -> list[ExtractedDocument]:
            document = _describe(row, params, scratch, context.limits, pending if model else None)
            return [document]

        results = run_rows(rows, context, self.name, work)
        _embed(results, params, context.device)
        if model is not None:
            _embed_visual(results, model, pending, context)
        return results


def _describe(
    row: ExtractorInput,
    params: ImageParams,
    scratch: Path,
    limits: ExtractionLimits,
    pending: list[tuple[ExtractedDocument, Image.Image]] | None,
) -> ExtractedDocument:
    path = require_file(row.values.get("image"), "image")
    image = open_image(path, limits.image_max_pixels, limits.image_max_frames)
    try:
        exif = exif_fields(image)
        document = ExtractedDocument(
            fields={
                "width": image.width,
                "height": image.height,
                "format": image.format or _source_format(path),
                "exif": exif,
            }
        )
        if params.enable_thumbnails:
            thumbnail = image.convert("RGB")
            thumbnail.thumbnail((params.thumbnail_size, params.thumbnail_size))
            target = scratch / "thumbnail.jpg"
            thumbnail.save(target, format="JPEG", quality=85)
            document.blobs.append(blob("thumbnail_url", target, "thumbnail", "image", "image/jpeg"))
        ocr_text = read_text(image, params.ocr_language) if params.run_ocr else ""
        if params.run_ocr:
            document.fields["ocr_text"] = ocr_text
        document.fields["text"] = "\n\n".join(t for t in (ocr_text, descriptive_text(exif)) if t).strip()
        if params.run_perceptual_hash:
            document.fields.update(perceptual_hashes(image))
        if params.run_visual_descriptor:
            document.vectors["visual_descriptor"] = visual_descriptor(image)
        if pending is not None:
            pending.append((document, prepare_image(image)))
        return document
    finally:
        image.close()


def _source_format(path: Path) -> str:
    return path.suffix.lstrip(".").upper()


def _embed(results: list[RowResult], params: ImageParams, device: str) -> None:
    """All images of the batch in one embedding call; an image without text gets no text vector."""
    if not params.run_text_embedding:
        return
    documents = [d for r in results for d in r.documents if d.fields.get("text")]
    vectors = embed_texts([d.fields["text"] for d in documents], key="minilm", device=device)
    for document, vector in zip(documents, vectors, strict=True):
        document.vectors["text_embedding"] = vector.tolist()


def _embed_visual(
    results: list[RowResult],
    model: str,
    pending: list[tuple[ExtractedDocument, Image.Image]],
    context: ExtractContext,
) -> None:
    """All images of the call through the model in batches; if the model cannot run, every row that
    waited for it fails with that reason (its other features are not stored half-done)."""
    try:
        embed_images(model, pending, context)
    except Exception as exc:  # noqa: BLE001 - a model failure is every waiting row's failure, categorised
        error = categorise(exc, f"vision model {model}")
        waiting = {id(document) for document, _ in pending}
        for result in results:
            if any(id(d) in waiting for d in result.documents):
                result.documents, result.error = [], error
    finally:
        for _, image in pending:
            image.close()


IMAGE_EXTRACTOR = ImageExtractor()
