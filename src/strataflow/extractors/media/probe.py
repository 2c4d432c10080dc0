"""What a media file holds: streams, duration, size, rate — read from headers, never decoded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from strataflow.extractors.media.failures import invalid

# Demuxers that read one still picture: a PNG renamed .mp4 opens as a "video" in FFmpeg.
_STILL_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif", "bmp_pipe", "tiff_pipe")


@dataclass(frozen=True)
class MediaInfo:
    """Facts about one audio/video file, times in seconds from the start of the file."""

    duration: float
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    video_codec: str = ""
    audio_codec: str = ""
    audio_rate: int = 0
    container: str = ""

    @property
    def media_type(self) -> str:
        return "video" if self.has_video else "audio"


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise invalid(f"{path.name} is not a readable audio/video file ({exc.strerror or exc})") from exc


def probe_media(path: Path) -> MediaInfo:
    """Read the headers of `path`; raise a VALIDATION failure when it is not usable media."""
    with _open(path) as container:
        fmt = container.format.name
        if any(name in _STILL_IMAGE_FORMATS for name in fmt.split(",")):
            raise invalid(f"{path.name} is a still image ({fmt}), not video or audio")
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise invalid(f"{path.name} has neither a video nor an audio stream")
        duration = _duration(container, video, audio)
        if duration <= 0:
            raise invalid(f"{path.name} has no measurable duration")
        return MediaInfo(
            duration=duration,
            has_video=video is not None,
            has_audio=audio is not None,
            width=video.codec_context.width if video else 0,
            height=video.codec_context.height if video else 0,
            fps=float(video.average_rate or video.guessed_rate or 0) if video else 0.0,
            video_codec=video.codec_context.name if video else "",
            audio_codec=audio.codec_context.name if audio else "",
            audio_rate=audio.codec_context.sample_rate if audio else 0,
            container=fmt,
        )


def _duration(container: av.container.InputContainer, *streams: av.stream.Stream | None) -> float:
    if container.duration:
        return float(container.duration) / float(av.time_base)
    lengths = [float(s.duration * s.time_base) for s in streams if s is not None and s.duration and s.time_base]
    return max(lengths, default=0.0)


def video_start(stream: av.video.stream.VideoStream) -> float:
    """The first timestamp of a stream in seconds (frames are reported relative to it)."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def data_end(path: Path, claimed: float) -> float:
    """Seconds at which the file's audio/video packets really end: demuxed, never decoded.

    A header's duration is the sender's claim (a 2 KB file can claim 10^6 s); what the file
    holds is where its last packet ends. The demuxer jumps near the claimed end first, so a
    long file reads only its tail; a file shorter than its claim is read whole, which is cheap
    because it is short.
    """
    with _open(path) as container:
        streams = [*container.streams.video[:1], *container.streams.audio[:1]]
        if not streams:
            return 0.0
        end = 0.0
        try:
            container.seek(max(0, int((claimed - 30.0) * av.time_base)), backward=True, any_frame=False)
            end = _last_packet_end(container, streams)
        except av.error.FFmpegError:
            end = 0.0
        if end <= 0.0:  # the jump landed past the data or failed: read from the start
            container.seek(0)
            end = _last_packet_end(container, streams)
        return end


def _last_packet_end(container: av.container.InputContainer, streams: list[av.stream.Stream]) -> float:
    end = 0.0
    try:
        for packet in container.demux(*streams):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None or packet.time_base is None:
                continue
            start = float(stamp * packet.time_base) - _stream_start(packet.stream)
            end = max(end, start + float((packet.duration or 0) * packet.time_base))
    except av.error.FFmpegError:  # damaged data after the last good packet: what came before counts
        pass
    return end


def _stream_start(stream: av.stream.Stream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)
