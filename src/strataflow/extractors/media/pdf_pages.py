"""Page-level work on a PDF: opening it, rendering, figures, and OCR of scanned pages."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from strataflow.extractors.base import over_limit
from strataflow.extractors.media.failures import invalid
from strataflow.extractors.media.ocr import read_blocks, read_text
from strataflow.extractors.media.pdf_layout import Block
from strataflow.extractors.media.pdf_text import Box

POINTS_PER_INCH = 72.0
_MIN_FIGURE_AREA = 0.01  # of the page: smaller images are decoration (bullets, logos in a line)
_SCANNED_IMAGE_AREA = 0.5  # an image covering half the page with no text layer is a scan
_MIN_TEXT_CHARS = 10


def open_pdf(path: Path) -> pdfium.PdfDocument:
    """Open with PDFium; VALIDATION failure for anything that is not a readable PDF."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if b"%PDF-" not in head:
        raise invalid(f"{path.name} is not a PDF (no %PDF- header)")
    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise invalid(f"{path.name} is password-protected") from exc
        raise invalid(f"{path.name} is a damaged PDF ({message})") from exc


def image_boxes(page: pdfium.PdfPage) -> list[Box]:
    """Boxes of the page's image objects, in points from the top-left corner."""
    height = page.get_height()
    boxes = []
    for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,)):
        left, bottom, right, top = obj.get_bounds()
        boxes.append(
            Box(max(0.0, left), max(0.0, height - top), min(page.get_width(), right), min(height, height - bottom))
        )
    return boxes


def is_scanned(page: pdfium.PdfPage, text_chars: int, images: list[Box]) -> bool:
    """No usable text layer, but a picture covering most of the page."""
    area = page.get_width() * page.get_height()
    covered = max((b.width * b.height for b in images), default=0.0)
    return text_chars < _MIN_TEXT_CHARS and covered >= _SCANNED_IMAGE_AREA * area


def render(page: pdfium.PdfPage, dpi: int, max_pixels: int) -> Image.Image:
    """The page as an RGB picture at `dpi`, refused before any memory is spent when it exceeds `max_pixels`.

    Memory grows with the page's area times dpi squared, and both are the sender's to choose: a
    613-byte PDF declaring a 6000-point page renders at 150 dpi to 156 million pixels (1.4 GB).
    """
    scale = dpi / POINTS_PER_INCH
    pixels = round(page.get_width() * scale) * round(page.get_height() * scale)
    if pixels > max_pixels:
        raise over_limit(
            f"a page of {page.get_width():.0f} x {page.get_height():.0f} points rendered at {dpi} dpi",
            max_pixels,
            "pdf_max_page_pixels",
            "pixels",
            pixels,
        )
    image: Image.Image = page.render(scale=scale).to_pil().convert("RGB")
    return image


def crop_points(image: Image.Image, box: Box, dpi: int, pad: float = 2.0) -> Image.Image:
    """The part of a page render at `dpi` under `box` (points), a little padded."""
    scale = dpi / POINTS_PER_INCH
    left, top = max(0, int((box.x0 - pad) * scale)), max(0, int((box.top - pad) * scale))
    right = min(image.width, int((box.x1 + pad) * scale) + 1)
    bottom = min(image.height, int((box.bottom + pad) * scale) + 1)
    return image.crop((left, top, max(right, left + 1), max(bottom, top + 1)))


def ocr_page_blocks(page: pdfium.PdfPage, dpi: int, language: str, max_pixels: int) -> list[Block]:
    """A scanned page through Tesseract: its paragraphs become blocks, boxes converted to points."""
    scale = POINTS_PER_INCH / dpi
    image = render(page, dpi, max_pixels)
    blocks = []
    for found in read_blocks(image, language):
        box = Box(
            found.left * scale,
            found.top * scale,
            (found.left + found.width) * scale,
            (found.top + found.height) * scale,
        )
        blocks.append(Block("paragraph", found.text.splitlines(), box, confidence=found.confidence, source="ocr"))
    return blocks


def figure_blocks(
    page: pdfium.PdfPage, images: list[Box], page_render: Image.Image | None, dpi: int, language: str | None
) -> list[Block]:
    """Embedded pictures large enough to matter; their text, if any, read by OCR when `language` is set."""
    area = page.get_width() * page.get_height()
    blocks = []
    for box in images:
        if box.width * box.height < _MIN_FIGURE_AREA * area:
            continue
        text = ""
        if language and page_render is not None:
            text = read_text(crop_points(page_render, box, dpi), language)
        blocks.append(Block("figure", text.splitlines(), box, source="ocr" if text else "text_layer"))
    return blocks
