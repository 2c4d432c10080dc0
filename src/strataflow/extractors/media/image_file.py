"""Opening image files safely and reading their EXIF metadata as plain JSON values."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from strataflow.config import IMAGE_MAX_FRAMES, IMAGE_MAX_PIXELS
from strataflow.extractors.base import over_limit
from strataflow.extractors.media.failures import invalid

# Text-like EXIF tags worth embedding along with OCR text: what a person wrote about the picture.
DESCRIPTIVE_TAGS = ("ImageDescription", "XPTitle", "XPSubject", "XPComment", "XPKeywords", "UserComment", "Artist")


def open_image(path: Path, max_pixels: int = IMAGE_MAX_PIXELS, max_frames: int = IMAGE_MAX_FRAMES) -> Image.Image:
    """Decode `path` fully, upright (EXIF orientation applied); VALIDATION failure if it is no image.

    The declared size and frame count are checked against the caps before a pixel is decoded:
    a PNG of a few hundred KB can declare 40,000 x 40,000 pixels (4.8 GB as RGB).
    """
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow's own guard, behind ours, on the same number
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our cap decides, below
            with Image.open(path) as probe:
                _check_size(path, probe, max_pixels, max_frames)
                probe.verify()  # checks the structure without decoding pixels
            image = Image.open(path)
            image.load()
    except Image.DecompressionBombError as exc:  # Pillow's guard fired first (a size past twice the cap)
        raise over_limit(f"the image size of {path.name}", max_pixels, "image_max_pixels", "pixels") from exc
    except UnidentifiedImageError as exc:
        raise invalid(f"{path.name} is not a usable image ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise invalid(f"{path.name} is a damaged or truncated image ({exc})") from exc
    upright = ImageOps.exif_transpose(image)
    if upright is None or upright is image:
        return image
    upright.format = image.format  # the rotated copy forgets which decoder read it
    image.close()
    return upright


def _check_size(path: Path, image: Image.Image, max_pixels: int, max_frames: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise over_limit(
            f"the image size of {path.name}, {width} x {height},",
            max_pixels,
            "image_max_pixels",
            "pixels",
            width * height,
        )
    frames = getattr(image, "n_frames", 1)  # counted from the frame headers, not decoded
    if frames > max_frames:
        raise over_limit(f"the frame count of {path.name}", max_frames, "image_max_frames", value=frames)


def exif_fields(image: Image.Image) -> dict[str, Any]:
    """EXIF tags by name (base IFD and the Exif sub-IFD), values reduced to JSON types."""
    exif = image.getexif()
    raw: dict[int, Any] = dict(exif.items())
    try:
        raw.update(exif.get_ifd(ExifTags.IFD.Exif))
    except (KeyError, ValueError):
        pass
    fields: dict[str, Any] = {}
    for tag, value in raw.items():
        name = ExifTags.TAGS.get(tag)
        if name is None or name in ("ExifOffset", "GPSInfo", "MakerNote", "PrintImageMatching"):
            continue
        simple = _json_value(value, name)
        if simple not in (None, ""):
            fields[name] = simple
    return fields


def _decode_bytes(name: str, value: bytes) -> str | None:
    """XP* tags are UTF-16; UserComment starts with an 8-byte charset header; others are text or binary."""
    try:
        if name.startswith("XP"):
            return value.decode("utf-16-le")
        if name == "UserComment":
            charset, body = value[:8], value[8:]
            return body.decode("utf-16-le" if charset.startswith(b"UNICODE") else "latin-1")
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None  # binary payloads (thumbnails, vendor blobs) are not metadata a person reads


def _json_value(value: Any, name: str = "") -> Any:
    if isinstance(value, bytes):
        text = _decode_bytes(name, value)
        return None if text is None else text.rstrip("\x00").strip()
    if isinstance(value, str):
        return value.rstrip("\x00").strip()
    if isinstance(value, (int, float, bool)):
        return value
    if isinstance(value, tuple):
        items = [_json_value(v, name) for v in value]
        return items if all(v is not None for v in items) else None
    try:  # IFDRational and friends
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def descriptive_text(exif: dict[str, Any]) -> str:
    return "\n".join(str(exif[tag]) for tag in DESCRIPTIVE_TAGS if isinstance(exif.get(tag), str) and exif[tag])
