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

# The defaults live beside the settings that override them (config.py), so the two never drift apart.
from strataflow.config import (
    IMAGE_MAX_FRAMES,
    IMAGE_MAX_PIXELS,
    PDF_PAGE_MAX_PIXELS,
    TEXT_MAX_BYTES,
    VIDEO_MAX_SEGMENTS,
)

if TYPE_CHECKING:
    from strataflow.config import Settings


@dataclass(frozen=True)
class ExtractionLimits:
    pdf_page_max_pixels: int = PDF_PAGE_MAX_PIXELS
    video_max_segments: int = VIDEO_MAX_SEGMENTS
    image_max_pixels: int = IMAGE_MAX_PIXELS
    image_max_frames: int = IMAGE_MAX_FRAMES
    text_max_bytes: int = TEXT_MAX_BYTES
    vision_batch_size: int = 32  # images per vision-model forward pass: bounds the batch's memory

    @classmethod
    def from_settings(cls, settings: Settings) -> ExtractionLimits:
        """The operator's caps (`STRATAFLOW_*`), handed to the extractor with every call."""
        return cls(
            pdf_page_max_pixels=settings.pdf_max_page_pixels,
            video_max_segments=settings.video_max_segments,
            image_max_pixels=settings.image_max_pixels,
            image_max_frames=settings.image_max_frames,
            text_max_bytes=settings.text_max_bytes,
            vision_batch_size=settings.vision_batch_size,
        )
