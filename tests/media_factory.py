"""Real test media made on the spot: videos with known cuts, speech, tones, text on frames.

Everything here is deterministic and small (seconds of media), so tests can
assert exact cut times and known words. Speech comes from espeak-ng (Debian),
muxing and encoding from PyAV, text on images from Pillow's bundled font.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FPS = 25
SIZE = (320, 240)
AUDIO_RATE = 22050
av.logging.set_libav_level(av.logging.ERROR)  # no encoder statistics in test output

SENTENCE = "The quick brown fox jumps over the lazy dog."


@dataclass(frozen=True)
class Shot:
    """A stretch of video with one look; a change of shot is a hard cut."""

    seconds: float
    colour: tuple[int, int, int]
    text: str = ""
    pattern: bool = False


# Three hard cuts at 2, 4 and 6 seconds; the second shot carries readable text.
FOUR_SHOTS = (
    Shot(2.0, (20, 40, 160)),
    Shot(2.0, (250, 250, 250), text="STRATAFLOW"),
    Shot(2.0, (200, 30, 30), pattern=True),
    Shot(2.0, (230, 210, 40)),
)
CUTS = (2.0, 4.0, 6.0)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def text_image(
    text: str,
    size: tuple[int, int] = (640, 200),
    font_size: int = 48,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Dark text centred on a plain background: what OCR should read back."""
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    face = font(font_size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face)
    position = ((size[0] - (right - left)) // 2, (size[1] - (bottom - top)) // 2)
    draw.text(position, text, fill=(0, 0, 0), font=face)
    return image


def _shot_frame(shot: Shot) -> np.ndarray:
    if shot.text:
        return np.asarray(text_image(shot.text, SIZE, 44, shot.colour))
    frame = np.empty((SIZE[1], SIZE[0], 3), dtype=np.uint8)
    frame[:] = shot.colour
    if shot.pattern:
        ys, xs = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
        frame[((ys // 40 + xs // 40) % 2) == 0] = (30, 160, 30)
    return frame


def speech_wav(path: Path, sentence: str = SENTENCE) -> Path:
    """espeak-ng speaks `sentence` into a mono 22.05 kHz WAV."""
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), sentence], check=True, capture_output=True)
    return path


def read_mono(path: Path, rate: int = AUDIO_RATE) -> np.ndarray:
    """A whole (short) audio file as float32 mono samples at `rate`."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32)


def tone(seconds: float, hz: float = 440.0, level: float = 0.25, rate: int = AUDIO_RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def silence(seconds: float, rate: int = AUDIO_RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


def soundtrack(work: Path, total_seconds: float, speech_at: float = 3.0) -> tuple[np.ndarray, float]:
    """Tone for 1.5 s, silence, the spoken sentence from `speech_at`, silence to the end.

    Returns the samples and the second at which speech ends.
    """
    speech = read_mono(speech_wav(work / "speech.wav"))
    head = np.concatenate([tone(1.5), silence(speech_at - 1.5)])
    body = np.concatenate([head, speech])
    speech_end = len(body) / AUDIO_RATE
    tail = silence(max(0.0, total_seconds - speech_end))
    return np.concatenate([body, tail])[: int(total_seconds * AUDIO_RATE)], speech_end


def write_video(
    path: Path,
    shots: tuple[Shot, ...] = FOUR_SHOTS,
    audio: np.ndarray | None = None,
    gop: int = 50,
    faststart: bool = False,
) -> Path:
    """H.264 (+ AAC when `audio` is given) MP4 of `shots` at 25 fps, a keyframe every `gop` frames.

    `faststart` puts the index first, so a truncated copy still opens and only its data is short.
    """
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height = SIZE
        video.pix_fmt = "yuv420p"
        # A fixed GOP and no scene-cut keyframes, so keyframes do not coincide with the cuts.
        video.codec_context.gop_size = gop
        video.options = {"preset": "ultrafast", "x264-params": "scenecut=0"}
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=AUDIO_RATE)
            audio_stream.layout = "mono"
        index = 0
        for shot in shots:
            picture = _shot_frame(shot)
            for _ in range(round(shot.seconds * FPS)):
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1, FPS)
                container.mux(video.encode(frame))
                index += 1
        container.mux(video.encode(None))
        if audio_stream is not None and audio is not None:
            _encode_audio(container, audio_stream, audio)
    return path


def _encode_audio(
    container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, samples: np.ndarray
) -> None:
    block = 1024
    for start in range(0, len(samples), block):
        chunk = samples[start : start + block].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="flt", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_wav(path: Path, samples: np.ndarray, rate: int = AUDIO_RATE) -> Path:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def truncate(source: Path, target: Path, keep_fraction: float = 0.3) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep_fraction)])
    return target


def files_under(root: Path) -> set[Path]:
    """Every file left below `root` (what a test expects cleaned up or kept)."""
    return {p.resolve() for p in root.rglob("*") if p.is_file()} if root.exists() else set()
