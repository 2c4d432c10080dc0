"""The pure rules under the media extractors: segment plans, silence spans, word placement, PDF layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from strataflow.extractors.media.pdf_layout import layout_blocks
from strataflow.extractors.media.pdf_text import Box, TextRun
from strataflow.extractors.media.segments import Segment, segments_from_cuts, snap_to_keyframes, time_cuts
from strataflow.extractors.media.silence import Span, silence_cuts, silent_spans, window_levels_db
from strataflow.extractors.media.transcription import Word, ensure_whisper_model, join_words, words_by_segment


def spans(segments: list[Segment]) -> list[tuple[float, float]]:
    return [(s.start, s.end) for s in segments]


def test_time_cuts_leave_the_remainder_as_the_last_segment() -> None:
    assert spans(segments_from_cuts(time_cuts(25.0, 10.0), 25.0)) == [(0, 10), (10, 20), (20, 25)]
    assert spans(segments_from_cuts(time_cuts(20.0, 10.0), 20.0)) == [(0, 10), (10, 20)]
    assert spans(segments_from_cuts(time_cuts(3.0, 10.0), 3.0)) == [(0, 3)]


def test_cuts_outside_the_file_or_repeated_are_ignored() -> None:
    assert spans(segments_from_cuts([-1, 0, 4, 4.0000001, 2, 8, 9], 8.0)) == [(0, 2), (2, 4), (4, 8)]


def test_snapping_moves_cuts_to_the_next_keyframe() -> None:
    assert snap_to_keyframes([3.0, 6.0, 7.5], [0.0, 2.0, 4.0, 6.0]) == [4.0, 6.0]


def test_window_levels_in_dbfs() -> None:
    full_scale_sine = np.sin(np.linspace(0, 200 * np.pi, 16000)).astype(np.float32)
    levels = window_levels_db(full_scale_sine, 320)
    assert levels == pytest.approx(np.full(50, -3.01), abs=0.1)
    assert window_levels_db(np.zeros(640, dtype=np.float32), 320).tolist() == [-120.0, -120.0]


def test_silent_spans_need_the_minimum_duration() -> None:
    loud, quiet = -10.0, -60.0
    levels = [loud] * 10 + [quiet] * 30 + [loud] * 10 + [quiet] * 5 + [loud] * 5
    assert silent_spans(levels, -40, 0.5, window_seconds=0.02) == [Span(0.2, 0.8)]


def test_silence_cuts_skip_leading_and_trailing_silence() -> None:
    found = [Span(0.0, 1.0), Span(3.0, 4.0), Span(9.0, 10.0)]
    assert silence_cuts(found, 10.0) == [3.5]


def test_each_word_lands_in_the_segment_holding_its_middle() -> None:
    segments = [Segment(0, 0, 2), Segment(1, 2, 4)]
    words = [Word("over", 1.7, 2.1, 0.9), Word("the", 2.1, 2.6, 0.9), Word("hello", 0.1, 0.5, 0.9)]
    grouped = words_by_segment(words, segments)
    assert join_words(grouped[0]) == "hello over"
    assert join_words(grouped[1]) == "the"


def run(x: float, top: float, text: str, size: float = 11.0, width: float | None = None) -> TextRun:
    return TextRun(text, Box(x, top, x + (width or 5.5 * len(text)), top + size * 1.2), size)


def test_layout_rules_header_paragraph_list_and_table() -> None:
    runs = [
        run(72, 60, "Results", size=18),
        run(72, 100, "First line of the paragraph."),
        run(72, 113.5, "Second line of the paragraph."),
        run(72, 160, "• apples"),
        run(72, 173.5, "• pears"),
        run(72, 220, "Name"),
        run(250, 220, "Count"),
        run(72, 236, "Oak"),
        run(250, 236, "3"),
    ]
    blocks = layout_blocks(runs, vertical_threshold=15, horizontal_threshold=50)
    assert [(b.kind, b.text) for b in blocks] == [
        ("header", "Results"),
        ("paragraph", "First line of the paragraph.\nSecond line of the paragraph."),
        ("list", "• apples\n• pears"),
        ("table", "Name\tCount\nOak\t3"),
    ]


def test_two_columns_of_prose_are_not_a_table() -> None:
    left = [run(72, 100 + i * 13.5, "left column prose line", width=230) for i in range(3)]
    right = [run(330, 100 + i * 13.5, "right column prose line", width=230) for i in range(3)]
    blocks = layout_blocks(left + right, vertical_threshold=15, horizontal_threshold=20)
    assert [b.kind for b in blocks] == ["paragraph", "paragraph"]
    assert [b.box.x0 for b in blocks] == [72, 330]


def test_whisper_weights_are_joined_once(tmp_path: Path) -> None:
    model = ensure_whisper_model(tmp_path)
    assert (model / "model.bin").stat().st_size == 2 * 72608766
    assert {p.name for p in model.iterdir()} == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    stamp = (model / "model.bin").stat().st_mtime_ns
    assert ensure_whisper_model(tmp_path) == model
    assert (model / "model.bin").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [model.name]  # no staging directory left behind
