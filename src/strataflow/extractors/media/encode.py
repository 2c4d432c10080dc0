"""Exact segment files in one decoding pass: every frame goes to the segment its time falls in.

Cutting exactly at a scene change means re-encoding (a stream copy can only
start at a keyframe). The source is decoded once, front to back; each segment
gets its own H.264/AAC MP4 (AAC .m4a for audio-only sources), and the frame
nearest the middle of each segment is saved as its keyframe. At most two
segment writers are open at once (audio and video packets interleave a little
across a boundary), so memory stays flat whatever the length of the file.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from strataflow.extractors.media.failures import invalid
from strataflow.extractors.media.frames import save_frame
from strataflow.extractors.media.probe import MediaInfo
from strataflow.extractors.media.segments import Segment

_MS = Fraction(1, 1000)


@dataclass
class SegmentOutputs:
    """Files one pass made, by segment index, and how far decoding really got."""

    files: dict[int, Path] = field(default_factory=dict)
    keyframes: dict[int, Path] = field(default_factory=dict)
    decoded_until: float = 0.0


class _SegmentWriter:
    """One output file: re-encodes the frames of one segment with times rebased to its start."""

    def __init__(self, path: Path, segment: Segment, info: MediaInfo, audio_layout: str | None) -> None:
        self.segment = segment
        self.container = av.open(str(path), "w")
        self.video = self.audio = None
        self.last_video_pts = -1
        self.audio_samples = 0
        if info.has_video:
            self.video = self.container.add_stream("libx264", rate=Fraction(info.fps or 25).limit_denominator(1001))
            # yuv420p needs even sides.
            self.video.width, self.video.height = info.width - info.width % 2, info.height - info.height % 2
            self.video.pix_fmt = "yuv420p"
            self.video.codec_context.time_base = _MS
            self.video.options = {"preset": "veryfast", "crf": "23"}
        if audio_layout is not None:
            self.audio = self.container.add_stream("aac", rate=info.audio_rate)
            self.audio.layout = audio_layout

    def add_video(self, frame: av.VideoFrame, t: float) -> None:
        assert self.video is not None
        out = frame.reformat(width=self.video.width, height=self.video.height, format="yuv420p")
        # Millisecond timestamps, forced strictly increasing for variable-rate sources.
        pts = max(round((t - self.segment.start) * 1000), self.last_video_pts + 1)
        out.pts, out.time_base = pts, _MS
        self.last_video_pts = pts
        self.container.mux(self.video.encode(out))

    def add_audio(self, frame: av.AudioFrame, t: float) -> None:
        """`frame` is planar float already cut to this segment (see `_audio_pieces`)."""
        assert self.audio is not None
        rate = self.audio.codec_context.sample_rate
        if self.audio_samples == 0:
            self.audio_samples = max(0, round((t - self.segment.start) * rate))
        frame.pts, frame.time_base = self.audio_samples, Fraction(1, rate)
        self.audio_samples += frame.samples
        self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        if self.video is not None:
            self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self.container.mux(self.audio.encode(None))
        self.container.close()


def encode_segments(
    path: Path,
    info: MediaInfo,
    segments: list[Segment],
    out_dir: Path,
    write_files: bool,
    grab_keyframes: bool,
    should_stop: Callable[[], bool] = lambda: False,
) -> SegmentOutputs:
    """Decode `path` once; write each segment's file and/or keyframe under `out_dir`."""
    outputs = SegmentOutputs()
    starts = [s.start for s in segments]
    suffix = ".mp4" if info.has_video else ".m4a"
    writers: dict[int, _SegmentWriter] = {}
    pending_keyframe: dict[int, av.VideoFrame] = {}
    with av.open(str(path)) as source:
        # Without segment files only the keyframes are wanted: leave the audio undecoded.
        streams = list(source.streams.video[:1]) + (list(source.streams.audio[:1]) if write_files else [])
        for stream in streams:
            stream.thread_type = "AUTO"
        video_stream = source.streams.video[0] if source.streams.video else None
        layout = output_layout(source.streams.audio[0]) if source.streams.audio else None
        origin = _origin(streams)
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=info.audio_rate) if layout else None
        progress = {stream.index: 0.0 for stream in streams}

        def writer_for(i: int) -> _SegmentWriter:
            if i not in writers:
                target = out_dir / f"segment_{i:05d}{suffix}"
                writers[i] = _SegmentWriter(target, segments[i], info, layout)
                outputs.files[i] = target
            return writers[i]

        for frame, stream in _frames(source, streams, path):
            if frame.time is None:
                continue
            t = float(frame.time) - origin
            i = max(0, bisect.bisect_right(starts, t) - 1)
            is_video = stream is video_stream
            if is_video and grab_keyframes and i not in outputs.keyframes:
                pending_keyframe[i] = frame
                if t >= segments[i].middle:  # the first frame past the middle represents the segment
                    outputs.keyframes[i] = save_frame(frame, out_dir / f"keyframe_{i:05d}.jpg")
                    pending_keyframe.pop(i)
            if write_files and is_video:
                writer_for(i).add_video(frame, t)
            elif write_files and resampler is not None:
                for piece_segment, piece, piece_t in _audio_pieces(resampler, frame, t, segments, starts):
                    writer_for(piece_segment).add_audio(piece, piece_t)
            progress[stream.index] = t
            outputs.decoded_until = max(outputs.decoded_until, t)
            # A segment is finished once every stream has moved past its end.
            done_until = min(progress.values())
            for j in [j for j in writers if segments[j].end <= done_until]:
                writers.pop(j).close()
            if should_stop():
                break
        for j in sorted(writers):
            writers.pop(j).close()
    for i, frame in pending_keyframe.items():  # segments shorter than half a frame interval
        outputs.keyframes.setdefault(i, save_frame(frame, out_dir / f"keyframe_{i:05d}.jpg"))
    return outputs


def _audio_pieces(
    resampler: av.AudioResampler, frame: av.AudioFrame, t: float, segments: list[Segment], starts: list[float]
) -> Iterator[tuple[int, av.AudioFrame, float]]:
    """Split decoded audio at segment boundaries, so each file holds exactly its span of sound."""
    for out in resampler.resample(frame):
        samples = out.to_ndarray()  # planar: (channels, n)
        rate, layout = out.sample_rate, out.layout.name
        position = 0
        while position < samples.shape[1]:
            piece_t = t + position / rate
            i = max(0, bisect.bisect_right(starts, piece_t + 1e-9) - 1)
            stop = samples.shape[1]
            if i + 1 < len(segments):
                stop = min(stop, position + max(1, math.ceil((segments[i].end - piece_t) * rate)))
            piece = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, position:stop]), format="fltp", layout=layout
            )
            piece.sample_rate = rate
            yield i, piece, piece_t
            position = stop
        t += samples.shape[1] / rate


def output_layout(stream: av.audio.stream.AudioStream) -> str:
    """A channel layout an encoder accepts: WAV files often carry an unnamed one ("1 channels")."""
    channels = len(stream.layout.channels)
    return {1: "mono", 2: "stereo"}.get(channels) or av.AudioLayout(channels).name


def _origin(streams: list[av.stream.Stream]) -> float:
    """Frames are timed from the earliest stream start, so segment times start at 0."""
    starts = [float(s.start_time * s.time_base) for s in streams if s.start_time is not None and s.time_base]
    return min(starts, default=0.0)


def _frames(source: av.container.InputContainer, streams: list[av.stream.Stream], path: Path):  # type: ignore[no-untyped-def]
    try:
        for packet in source.demux(*streams):
            for frame in packet.decode():
                yield frame, packet.stream
    except av.error.FFmpegError as exc:
        raise invalid(
            f"{path.name}: decoding failed ({exc.strerror or exc}); the file is truncated or corrupt"
        ) from exc
