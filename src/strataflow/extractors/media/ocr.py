"""OCR with Tesseract (Debian `tesseract-ocr` + `tesseract-ocr-eng`) through pytesseract.

Tesseract reads dark-on-light text best at roughly 20–40 px letter height, so
small images are upscaled first. `read_blocks` keeps Tesseract's own layout
analysis (block → paragraph → line → word) with boxes and confidences, which is
what a scanned PDF page becomes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from PIL import Image, ImageOps

from strataflow.extractors.base import ErrorCategory, ExtractionError

_MIN_SIDE = 1000  # upscale smaller images: Tesseract misses small glyphs
_MAX_SIDE = 5000  # and cap huge ones: cost grows with pixels, accuracy does not


@dataclass(frozen=True)
class OcrBlock:
    """A paragraph Tesseract found: text, box in the input image's pixels, mean word confidence 0–1."""

    text: str
    left: int
    top: int
    width: int
    height: int
    confidence: float


def _require_tesseract() -> None:
    if shutil.which("tesseract") is None:
        raise ExtractionError(
            ErrorCategory.DEPENDENCY,
            "OCR needs the tesseract binary (Debian packages tesseract-ocr, tesseract-ocr-eng)",
        )


def _prepare(image: Image.Image) -> tuple[Image.Image, float]:
    """Greyscale, scaled into Tesseract's comfortable range; returns the scale used."""
    grey = ImageOps.grayscale(image.convert("RGB") if image.mode not in ("RGB", "L") else image)
    longest = max(grey.size)
    scale = 1.0
    if longest < _MIN_SIDE:
        scale = _MIN_SIDE / longest
    elif longest > _MAX_SIDE:
        scale = _MAX_SIDE / longest
    if scale != 1.0:
        grey = grey.resize(
            (max(1, round(grey.width * scale)), max(1, round(grey.height * scale))), Image.Resampling.LANCZOS
        )
    return grey, scale


def read_text(image: Image.Image, language: str = "eng") -> str:
    """All text in `image`, lines joined by newlines, paragraphs by blank lines."""
    return "\n\n".join(block.text for block in read_blocks(image, language))


def read_blocks(image: Image.Image, language: str = "eng") -> list[OcrBlock]:
    """Paragraphs with boxes (in `image` pixels) and confidences, in reading order."""
    import pytesseract

    _require_tesseract()
    prepared, scale = _prepare(image)
    data = pytesseract.image_to_data(prepared, lang=language, output_type=pytesseract.Output.DICT)
    paragraphs: dict[tuple[int, int], list[int]] = {}
    for i, word in enumerate(data["text"]):
        if word.strip() and float(data["conf"][i]) >= 0:
            paragraphs.setdefault((data["block_num"][i], data["par_num"][i]), []).append(i)
    return [_block(data, indices, scale) for indices in paragraphs.values()]


def _block(data: dict[str, list], indices: list[int], scale: float) -> OcrBlock:  # type: ignore[type-arg]
    lines: dict[int, list[str]] = {}
    for i in indices:
        lines.setdefault(data["line_num"][i], []).append(data["text"][i].strip())
    left = min(data["left"][i] for i in indices)
    top = min(data["top"][i] for i in indices)
    right = max(data["left"][i] + data["width"][i] for i in indices)
    bottom = max(data["top"][i] + data["height"][i] for i in indices)
    confidence = sum(float(data["conf"][i]) for i in indices) / len(indices) / 100.0
    return OcrBlock(
        text="\n".join(" ".join(words) for words in lines.values()),
        left=round(left / scale),
        top=round(top / scale),
        width=round((right - left) / scale),
        height=round((bottom - top) / scale),
        confidence=round(confidence, 4),
    )
