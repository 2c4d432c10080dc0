"""Decode an audio track as mono float32 in bounded chunks, so hours of audio never sit in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

from strataflow.extractors.media.failures import invalid


def iter_mono_chunks(
    path: Path, rate: int = 16000, chunk_seconds: float = 300.0
) -> Iterator[tuple[float, NDArray[np.float32]]]:
    """Yield (start second, samples) chunks of the first audio track, resampled to mono `rate`.

    Times count decoded samples from the start of the track, which is what
    Whisper and the silence detector see; chunks are at most `chunk_seconds` long.
    """
    chunk_len = max(1, int(chunk_seconds * rate))
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    pending: list[NDArray[np.float32]] = []
    pending_len = 0
    emitted = 0
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise invalid(f"{path.name} has no audio track")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        for frame in _decode(container, stream, path):
            for out in resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                pending.append(samples)
                pending_len += len(samples)
                while pending_len >= chunk_len:
                    block = np.concatenate(pending)
                    yield emitted / rate, block[:chunk_len]
                    emitted += chunk_len
                    rest = block[chunk_len:]
                    pending, pending_len = [rest], len(rest)
        for out in resampler.resample(None):
            pending.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    if pending and sum(len(p) for p in pending):
        yield emitted / rate, np.concatenate(pending)


def _decode(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, path: Path
) -> Iterator[av.AudioFrame]:
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as exc:
        raise invalid(
            f"{path.name}: the audio track cannot be decoded ({exc.strerror or exc}); the file is truncated or corrupt"
        ) from exc
