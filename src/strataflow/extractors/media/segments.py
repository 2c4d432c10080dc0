"""Segment plans: contiguous [start, end) spans that cover a file from 0 to its duration."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Cuts closer than this to each other or to an end are the same cut (float noise, frame rounding).
_SAME_INSTANT = 1e-3


@dataclass(frozen=True)
class Segment:
    index: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2


def segments_from_cuts(cuts: Iterable[float], duration: float) -> list[Segment]:
    """Contiguous segments between sorted, de-duplicated cut times inside (0, duration)."""
    inner = sorted(c for c in cuts if _SAME_INSTANT < c < duration - _SAME_INSTANT)
    bounds = [0.0]
    for cut in inner:
        if cut - bounds[-1] > _SAME_INSTANT:
            bounds.append(cut)
    bounds.append(duration)
    return [Segment(i, bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def time_cuts(duration: float, interval: float) -> list[float]:
    """Cut every `interval` seconds; the last segment is whatever remains."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    count = int(duration // interval)
    return [interval * i for i in range(1, count + 1)]


def snap_to_keyframes(cuts: Sequence[float], keyframes: Sequence[float]) -> list[float]:
    """Move each cut to the first keyframe at or after it: where a stream copy can start a file."""
    ordered = sorted(keyframes)
    snapped: list[float] = []
    for cut in cuts:
        at = bisect.bisect_left(ordered, cut - _SAME_INSTANT)
        if at < len(ordered):
            snapped.append(ordered[at])
    return snapped


def segment_at(segments: Sequence[Segment], t: float, hint: int = 0) -> int:
    """Index of the segment holding time `t`, searching forward from `hint` (times only grow in a pass)."""
    i = max(0, min(hint, len(segments) - 1))
    while i + 1 < len(segments) and t >= segments[i].end:
        i += 1
    return i
