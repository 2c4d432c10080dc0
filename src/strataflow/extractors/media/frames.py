"""Saving decoded video frames as files: the keyframe of each segment, at full resolution."""

from __future__ import annotations

from pathlib import Path

import av
from PIL import Image

THUMBNAIL_MAX_SIDE = 320


def save_frame(frame: av.VideoFrame, path: Path) -> Path:
    """Write one decoded frame as a high-quality JPEG (OCR reads it back, so keep it sharp)."""
    frame.to_image().save(path, format="JPEG", quality=92)
    return path


def save_thumbnail(source: Path, path: Path, max_side: int = THUMBNAIL_MAX_SIDE) -> Path:
    """A small JPEG of an image file, aspect ratio kept."""
    with Image.open(source) as opened:
        image = opened.convert("RGB")
        image.thumbnail((max_side, max_side))
        image.save(path, format="JPEG", quality=85)
    return path
