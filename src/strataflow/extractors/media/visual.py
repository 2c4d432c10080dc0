"""What an image looks like, without a neural model: a colour/edge descriptor and perceptual hashes.

No image model with weights inside a PyPI or Debian package could be found
for this machine, so images get hand-crafted features, named for what they are:

- `visual_descriptor` (128 numbers): a 96-bin HSV colour histogram (12 hues ×
  4 saturations × 2 values) plus a 32-bin edge-orientation histogram (8
  gradient directions × 2×2 image quadrants, weighted by edge strength).
  Each half is L1-normalised and square-rooted (the Hellinger mapping), the
  whole is L2-normalised, so cosine similarity compares colour make-up and
  coarse structure. It finds look-alike images (same scene, recolour,
  re-crop); it knows nothing of meaning and cannot be searched with text.
- perceptual hashes (pHash, dHash, 64 bits each, hex): Hamming distance ≤ ~10
  means near-duplicate (resized, recompressed, slightly edited).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

DESCRIPTOR_NAME = "hsv-colour-histogram-96 + edge-orientation-histogram-32"
DESCRIPTOR_DIMENSIONS = 128
_WORK_SIDE = 256  # features are computed on a small copy: cheap, and insensitive to resolution
_HUE_BINS, _SAT_BINS, _VAL_BINS = 12, 4, 2
_ORIENTATION_BINS = 8


def _working_copy(image: Image.Image) -> Image.Image:
    small = image.convert("RGB")
    small.thumbnail((_WORK_SIDE, _WORK_SIDE), Image.Resampling.BILINEAR)
    return small


def colour_histogram(image: Image.Image) -> NDArray[np.float64]:
    hsv = np.asarray(image.convert("HSV"), dtype=np.int32).reshape(-1, 3)
    hue = hsv[:, 0] * _HUE_BINS // 256
    sat = hsv[:, 1] * _SAT_BINS // 256
    val = hsv[:, 2] * _VAL_BINS // 256
    bins = (hue * _SAT_BINS + sat) * _VAL_BINS + val
    return np.bincount(bins, minlength=_HUE_BINS * _SAT_BINS * _VAL_BINS).astype(np.float64)


def edge_orientation_histogram(image: Image.Image) -> NDArray[np.float64]:
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    # Unsigned orientation in [0, pi): an edge and its mirror are the same edge.
    orientation = np.mod(np.arctan2(gy, gx), np.pi)
    bins = np.minimum((orientation / np.pi * _ORIENTATION_BINS).astype(np.int64), _ORIENTATION_BINS - 1)
    height, width = grey.shape
    parts = []
    for rows in (slice(0, height // 2), slice(height // 2, height)):
        for cols in (slice(0, width // 2), slice(width // 2, width)):
            parts.append(
                np.bincount(
                    bins[rows, cols].ravel(), weights=magnitude[rows, cols].ravel(), minlength=_ORIENTATION_BINS
                )
            )
    return np.concatenate(parts)


def _hellinger(histogram: NDArray[np.float64]) -> NDArray[np.float64]:
    total = histogram.sum()
    return np.sqrt(histogram / total) if total > 0 else histogram


def visual_descriptor(image: Image.Image) -> list[float]:
    """The 128-number colour + edge descriptor, unit length (see the module docstring)."""
    small = _working_copy(image)
    vector = np.concatenate([_hellinger(colour_histogram(small)), _hellinger(edge_orientation_histogram(small))])
    norm = np.linalg.norm(vector)
    if norm > 0:
        vector = vector / norm
    return [float(x) for x in vector.astype(np.float32)]


def perceptual_hashes(image: Image.Image) -> dict[str, str]:
    """pHash and dHash as 16-digit hex strings."""
    import imagehash

    rgb = image.convert("RGB")
    return {"perceptual_hash": str(imagehash.phash(rgb)), "difference_hash": str(imagehash.dhash(rgb))}
