"""Queries of a vision feature: text through the model's text tower, images through its image tower.

An image query arrives as a data URI or raw base64 (an uploaded image), or as an http(s) URL,
which is fetched through the outbound guard (never a private address unless the operator
allows it), or as `s3://`, which is refused: the server reads no tenant's bucket on a query's
word. The image is decoded under the same pixel and frame caps as extraction and shrunk the same
way (`prepare_image`), so a file queried as itself gives the vector it was stored with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strataflow.config import IMAGE_MAX_FRAMES, IMAGE_MAX_PIXELS
from strataflow.errors import BadRequestError
from strataflow.extractors.base import ExtractionError
from strataflow.extractors.media.image_file import open_image
from strataflow.extractors.vision import catalog
from strataflow.extractors.vision.encoder import VisionEncoder, load_encoder, prepare_image
from strataflow.outbound import FetchFailed, OutboundClient

MAX_IMAGE_QUERY_BYTES = 32 * 1024 * 1024


def _decode_base64(value: str) -> bytes:
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(
            "An image query must be a data URI, base64 bytes or an http(s) URL", {"query_type": "image"}
        ) from None


@dataclass
class VisionQueries:
    """Encodes queries for vision features; one per execution (it caches what it encoded)."""

    models_dir: Path | None = None  # None: the process's configured directory
    device: str = "cpu"
    outbound: OutboundClient | None = None  # None: URL queries are refused
    max_pixels: int = IMAGE_MAX_PIXELS
    max_frames: int = IMAGE_MAX_FRAMES
    _cache: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def encoder(self, model: str) -> VisionEncoder:
        info = catalog.find_model(self.models_dir or catalog.models_dir(), model)
        return load_encoder(info, self.device)

    def text(self, model: str, text: str) -> list[float]:
        key = (model, "text", text)
        if key not in self._cache:
            self._cache[key] = self.encoder(model).encode_texts([text])[0].tolist()
        return self._cache[key]

    def image(self, model: str, source: str) -> list[float]:
        """`source`: data URI, base64, or http(s) URL."""
        data = self._image_bytes(source)
        key = (model, "image", hashlib.sha256(data).hexdigest())
        if key not in self._cache:
            self._cache[key] = self._encode_image(model, data)
        return self._cache[key]

    def _image_bytes(self, source: str) -> bytes:
        lowered = source[:16].lower()
        if lowered.startswith(("http://", "https://")):
            if self.outbound is None:
                raise BadRequestError("Image URLs cannot be fetched here; send the image as a data URI")
            try:
                return self.outbound.get(source, max_bytes=MAX_IMAGE_QUERY_BYTES).content
            except FetchFailed as exc:
                raise BadRequestError(str(exc), {"url": source}) from None
        if lowered.startswith("s3://"):
            raise BadRequestError(
                "s3:// image queries are not read by the server; send the image as a data URI or an http(s) URL",
                {"url": source},
            )
        data = _decode_base64(source)
        if not data:
            raise BadRequestError("The image query is empty", {"query_type": "image"})
        if len(data) > MAX_IMAGE_QUERY_BYTES:
            raise BadRequestError(f"An image query may be at most {MAX_IMAGE_QUERY_BYTES} bytes")
        return data

    def _encode_image(self, model: str, data: bytes) -> list[float]:
        encoder = self.encoder(model)  # a missing model is refused before any decoding
        with tempfile.TemporaryDirectory(prefix="strataflow-query-") as scratch:
            path = Path(scratch) / "query-image"
            path.write_bytes(data)
            try:
                image = open_image(path, self.max_pixels, self.max_frames)
            except ExtractionError as exc:
                raise BadRequestError(f"The image query cannot be used: {exc.message}") from None
            try:
                prepared = prepare_image(image)
            finally:
                image.close()
        try:
            vector: list[float] = encoder.encode_images([prepared])[0].tolist()
        finally:
            prepared.close()
        return vector


def image_source(query: dict[str, Any], mode: str) -> str | None:
    """The image a query object carries, in any of the SDK's spellings, or None."""
    value = query.get("value")
    if mode == "image":
        value = query.get("image") or value
    elif mode == "url":
        value = query.get("url") or value
    elif mode == "content" and value is None and isinstance(query.get("content"), dict):
        legacy = query["content"]
        value = legacy.get("url") or legacy.get("base64") or legacy.get("data")
    return value if isinstance(value, str) and value.strip() else None
