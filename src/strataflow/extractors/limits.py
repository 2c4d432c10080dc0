"""Caps on what one input row may make a worker do, so a small hostile file fails its row, not the machine.

A 613-byte PDF can declare a page of 6000 x 6000 points, which renders to 1.4 GB; a 2 KB video
can claim a duration of 10^6 s; a PNG can declare 40,000 x 40,000 pixels. Every cap here is
checked from what a file declares, before the memory is spent, and a row over one fails with
a permanent VALIDATION error that names the cap (and the setting that raises it).

The operator sets them (`config.Settings`, `STRATAFLOW_*`); the engine hands them to the
extractor in every call, because an extractor process reads no settings of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strataflow.extractors.base import ExtractionError

# Defaults, shared with config.py so the two never drift apart.
PDF_PAGE_MAX_PIXELS = 40_000_000  # a US letter page OCRed at 600 dpi is 33.7 million
VIDEO_MAX_SEGMENTS = 10_000  # a 2.8-hour file cut every second
IMAGE_MAX_PIXELS = 90_000_000  # about Pillow's own bomb warning (89.5 million)
IMAGE_MAX_FRAMES = 1_000
TEXT_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ExtractionLimits:
    pdf_page_max_pixels: int = PDF_PAGE_MAX_PIXELS
    video_max_segments: int = VIDEO_MAX_SEGMENTS
    image_max_pixels: int = IMAGE_MAX_PIXELS
    image_max_frames: int = IMAGE_MAX_FRAMES
    text_max_bytes: int = TEXT_MAX_BYTES



def over_limit(what: str, limit: float, setting: str, unit: str = "", value: float | None = None) -> ExtractionError:
    """The permanent row failure for an input past a cap, naming the cap and the setting that raises it."""
    # Imported here: base.py imports this module for ExtractContext.limits.
    from strataflow.extractors.base import ErrorCategory, ExtractionError

    tail = f" {unit}" if unit else ""
    measured = f" ({value:,.0f}{tail})" if value is not None else ""
    return ExtractionError(ErrorCategory.VALIDATION, f"{what}{measured} exceeds the limit of {limit:,.0f}{tail} "
                                                     f"(setting STRATAFLOW_{setting.upper()})")
