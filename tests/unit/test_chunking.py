"""Chunk boundaries and overlap for every split strategy, on real text."""

from __future__ import annotations

import pytest

from strataflow.extractors.chunking import SplitBy, chunk_text, sentence_spans

TEXT = (
    "The lighthouse keeper climbed the stairs. He counted them: one hundred and twelve! "
    "Was the lamp still burning? It was.\n\n"
    "Outside, the storm had not eased.\nWaves broke over the rocks.\n\n\n"
    "By morning the sea was flat."
)


def texts(chunks: list) -> list[str]:
    return [c.text for c in chunks]


def test_none_keeps_whole_text_trimmed() -> None:
    chunks = chunk_text("  hello world \n", SplitBy.NONE, 1000, 0)
    assert texts(chunks) == ["hello world"]
    assert (chunks[0].start, chunks[0].end) == (2, 13)


@pytest.mark.parametrize("split_by", list(SplitBy))
@pytest.mark.parametrize("blank", ["", "   ", "\n\n\t \f"])
def test_blank_text_gives_no_chunks(split_by: SplitBy, blank: str) -> None:
    assert chunk_text(blank, split_by, 3, 1 if split_by is not SplitBy.NONE else 0) == []


def test_sentences_with_overlap() -> None:
    chunks = chunk_text(TEXT, SplitBy.SENTENCES, 2, 1)
    assert texts(chunks)[:3] == [
        "The lighthouse keeper climbed the stairs. He counted them: one hundred and twelve!",
        "He counted them: one hundred and twelve! Was the lamp still burning?",
        "Was the lamp still burning? It was.",
    ]
    # A paragraph break ends a sentence even without a full stop; the last window reaches the end.
    assert texts(chunks)[-1] == "Waves broke over the rocks.\n\n\nBy morning the sea was flat."
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_offsets_point_into_the_source() -> None:
    for split_by in (SplitBy.WORDS, SplitBy.SENTENCES, SplitBy.PARAGRAPHS, SplitBy.CHARACTERS):
        for chunk in chunk_text(TEXT, split_by, 3, 1):
            assert TEXT[chunk.start : chunk.end] == chunk.text


def test_words_windows_and_step() -> None:
    chunks = chunk_text("a b c d e f g", SplitBy.WORDS, 3, 1)
    assert texts(chunks) == ["a b c", "c d e", "e f g"]
    assert texts(chunk_text("a b c d e f g", SplitBy.WORDS, 3, 0)) == ["a b c", "d e f", "g"]


def test_characters_exact_windows() -> None:
    assert texts(chunk_text("abcdefghij", SplitBy.CHARACTERS, 4, 2)) == ["abcd", "cdef", "efgh", "ghij"]
    # Windows that are only whitespace are dropped; indices stay contiguous.
    chunks = chunk_text("ab" + " " * 8 + "cd", SplitBy.CHARACTERS, 4, 0)
    assert texts(chunks) == ["ab  ", "  cd"] and [c.index for c in chunks] == [0, 1]


def test_paragraphs_and_pages() -> None:
    assert texts(chunk_text(TEXT, SplitBy.PARAGRAPHS, 1, 0)) == [
        (
            "The lighthouse keeper climbed the stairs. He counted them: one hundred and twelve! "
            "Was the lamp still burning? It was."
        ),
        "Outside, the storm had not eased.\nWaves broke over the rocks.",
        "By morning the sea was flat.",
    ]
    assert texts(chunk_text("page one\fpage two\f\fpage three", SplitBy.PAGES, 1, 0)) == [
        "page one",
        "page two",
        "page three",
    ]


def test_unicode_sentences_and_words() -> None:
    text = "東京は大きい。大阪も大きい！ Größe zählt… „Wirklich?“ Ja. Ελληνικά; 😀 emoji ok."
    sentences = [text[s:e] for s, e in sentence_spans(text)]
    assert sentences[:2] == ["東京は大きい。", "大阪も大きい！"]
    assert "Größe zählt…" in sentences and "Ja." in sentences
    words = texts(chunk_text(text, SplitBy.WORDS, 1, 0))
    assert "😀" in words and "Größe" in words


def test_very_long_text_chunks_cover_everything() -> None:
    paragraph = "Sentence number {} is here. "
    text = "".join(paragraph.format(i) for i in range(20_000))
    chunks = chunk_text(text, SplitBy.SENTENCES, 50, 5)
    assert len(chunks) == -(-(20_000 - 5) // 45)
    assert chunks[0].text.startswith("Sentence number 0 ") and chunks[-1].text.endswith("number 19999 is here.")
    assert all(c.text.count("Sentence number") <= 50 for c in chunks)


def test_invalid_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        chunk_text("abc", SplitBy.WORDS, 2, 2)
    with pytest.raises(ValueError):
        chunk_text("abc", SplitBy.WORDS, 0, 0)
