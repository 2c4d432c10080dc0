"""Fast segment files by stream copy: no decoding, cuts land on the video's keyframes.

A copy can only start a file at a keyframe, so the plan's cut times are first
moved to the next keyframe (`keyframe_times` + `snap_to_keyframes`) and the
documents report those true times. Each segment's keyframe is the packet that
opens it, decoded on its own. Files are Matroska, which takes any codec as is.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from pathlib import Path

import av

from strataflow.extractors.media.encode import SegmentOutputs
from strataflow.extractors.media.failures import invalid
from strataflow.extractors.media.frames import save_frame
from strataflow.extractors.media.probe import MediaInfo
from strataflow.extractors.media.segments import Segment


def keyframe_times(path: Path) -> list[float]:
    """Seconds of every video keyframe, read from packet flags (demuxing only, no decoding)."""
    times: list[float] = []
    with av.open(str(path)) as source:
        if not source.streams.video:
            return times
        stream = source.streams.video[0]
        origin = _stream_origin(stream)
        try:
            for packet in source.demux(stream):
                if packet.is_keyframe and packet.pts is not None:
                    times.append(float(packet.pts * stream.time_base) - origin)
        except av.error.FFmpegError as exc:
            raise invalid(f"{path.name}: the video cannot be read ({exc.strerror or exc})") from exc
    return sorted(times)


class _CopyWriter:
    """One Matroska file receiving copied packets, each stream shifted to start near zero."""

    def __init__(self, target: Path, streams: list[av.stream.Stream]) -> None:
        self.container = av.open(str(target), "w")
        self.mapping = {s.index: self.container.add_stream_from_template(s) for s in streams}
        self.offsets: dict[int, int] = {}

    def add(self, packet: av.Packet) -> None:
        _copy_packet(packet, self.mapping, self.offsets, self.container)

    def close(self) -> None:
        self.container.close()


def copy_segments(
    path: Path,
    info: MediaInfo,
    segments: list[Segment],
    out_dir: Path,
    write_files: bool,
    grab_keyframes: bool,
    should_stop: Callable[[], bool] = lambda: False,
) -> SegmentOutputs:
    """One demux pass: packets are copied into the file of the segment their time falls in."""
    outputs = SegmentOutputs()
    starts = [s.start for s in segments]
    suffix = ".mkv" if info.has_video else ".mka"
    current = -1
    writer: _CopyWriter | None = None
    with av.open(str(path)) as source:
        streams = source.streams.video[:1] + source.streams.audio[:1]
        lead = streams[0]  # video when there is one: its keyframes open the segments
        origin = _stream_origin(lead)
        try:
            for packet in source.demux(*streams):
                if packet.pts is None or packet.dts is None:
                    continue
                t = float(packet.pts * packet.stream.time_base) - origin
                i = max(0, bisect.bisect_right(starts, t + 1e-6) - 1)
                if packet.stream is lead and i > current:
                    if should_stop():
                        break
                    current = i
                    if writer is not None:
                        writer.close()
                    if write_files:
                        outputs.files[i] = out_dir / f"segment_{i:05d}{suffix}"
                        writer = _CopyWriter(outputs.files[i], streams)
                    if grab_keyframes and info.has_video:
                        outputs.keyframes[i] = _decode_keyframe(lead, packet, out_dir / f"keyframe_{i:05d}.jpg")
                outputs.decoded_until = max(outputs.decoded_until, t)
                if writer is not None:
                    writer.add(packet)
        except av.error.FFmpegError as exc:
            raise invalid(
                f"{path.name}: reading packets failed ({exc.strerror or exc}); the file is truncated or corrupt"
            ) from exc
        finally:
            if writer is not None:
                writer.close()
    return outputs


def _copy_packet(
    packet: av.Packet,
    mapping: dict[int, av.stream.Stream],
    offsets: dict[int, int],
    container: av.container.OutputContainer,
) -> None:
    source_index = packet.stream.index
    # Each output stream starts near zero: shift by the first dts this segment saw for the stream.
    offset = offsets.setdefault(source_index, packet.dts)
    packet.pts -= offset
    packet.dts -= offset
    packet.stream = mapping[source_index]
    container.mux(packet)


def _decode_keyframe(stream: av.video.stream.VideoStream, packet: av.Packet, target: Path) -> Path:
    """Decode one keyframe packet with a fresh decoder (no neighbouring frames needed)."""
    decoder = av.CodecContext.create(stream.codec_context.name, "r")
    if stream.codec_context.extradata:
        decoder.extradata = stream.codec_context.extradata
    frames = list(decoder.decode(packet)) + list(decoder.decode(None))
    if not frames:
        raise invalid("a keyframe could not be decoded; the video is corrupt")
    return save_frame(frames[0], target)


def _stream_origin(stream: av.stream.Stream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)
