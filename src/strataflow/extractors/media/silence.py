"""Silence detection on the audio track: loudness per short window, silent runs, cut points."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from strataflow.extractors.media.audio_stream import iter_mono_chunks

WINDOW_SECONDS = 0.02  # 20 ms: short enough to find gaps between words, long enough to be stable
_RATE = 16000
_FLOOR_DB = -120.0


@dataclass(frozen=True)
class Span:
    start: float
    end: float


def window_levels_db(samples: NDArray[np.float32], window: int) -> NDArray[np.float64]:
    """RMS level of each full window in dBFS (a full-scale sine is about -3 dB)."""
    usable = len(samples) - len(samples) % window
    if usable == 0:
        return np.zeros(0)
    frames = samples[:usable].astype(np.float64).reshape(-1, window)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    levels: NDArray[np.float64] = np.maximum(20 * np.log10(np.maximum(rms, 1e-12)), _FLOOR_DB)
    return levels


def silent_spans(
    levels: Iterable[float], threshold_db: float, min_seconds: float, window_seconds: float = WINDOW_SECONDS
) -> list[Span]:
    """Runs of windows quieter than `threshold_db` lasting at least `min_seconds`."""
    spans: list[Span] = []
    run_start: int | None = None
    count = 0
    for i, level in enumerate(levels):
        count = i + 1
        if level < threshold_db:
            if run_start is None:
                run_start = i
        elif run_start is not None:
            _close(spans, run_start, i, min_seconds, window_seconds)
            run_start = None
    if run_start is not None:
        _close(spans, run_start, count, min_seconds, window_seconds)
    return spans


def _close(spans: list[Span], first: int, stop: int, min_seconds: float, window_seconds: float) -> None:
    if (stop - first) * window_seconds >= min_seconds:
        spans.append(Span(first * window_seconds, stop * window_seconds))


def detect_silences(
    path: Path, threshold_db: float, min_seconds: float, should_stop: Callable[[], bool] = lambda: False
) -> tuple[list[Span], float]:
    """Silent spans of the first audio track, streamed; also returns the audio's length in seconds."""
    window = int(WINDOW_SECONDS * _RATE)
    levels: list[NDArray[np.float64]] = []
    carry = np.zeros(0, dtype=np.float32)
    total = 0
    # One float per 20 ms window: two hours of audio is 360k numbers, not 115M samples.
    for _, chunk in iter_mono_chunks(path, _RATE, chunk_seconds=60.0):
        if should_stop():
            break
        total += len(chunk)
        joined = np.concatenate([carry, chunk])
        usable = len(joined) - len(joined) % window
        levels.append(window_levels_db(joined[:usable], window))
        carry = joined[usable:]
    flat = np.concatenate(levels) if levels else np.zeros(0)
    return silent_spans(flat.tolist(), threshold_db, min_seconds), total / _RATE


def silence_cuts(silences: list[Span], duration: float) -> list[float]:
    """Cut in the middle of each silence between sounds.

    Silence at the very start or end is not a cut: it belongs to the first or
    last segment, so no segment is pure silence unless the whole file is.
    """
    return [(s.start + s.end) / 2 for s in silences if s.start > 0.0 and s.end < duration - WINDOW_SECONDS]
