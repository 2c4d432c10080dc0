"""Split text into overlapping chunks of characters, words, sentences, paragraphs or pages.

Every splitter first finds the *units* of the text as (start, end) character
spans of the original string; a chunk is then a run of `size` consecutive
units, and the next chunk starts `size - overlap` units later. A chunk's text
is the exact slice of the original from its first unit's start to its last
unit's end, so offsets point back into the source and the original spacing
inside a chunk is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class SplitBy(StrEnum):
    CHARACTERS = "characters"
    WORDS = "words"
    SENTENCES = "sentences"
    PARAGRAPHS = "paragraphs"
    PAGES = "pages"  # form feeds (\f) separate pages, as PDF text extraction writes them
    NONE = "none"


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    start: int  # character offset into the original text
    end: int


_WORD = re.compile(r"\S+")
# A sentence ends at terminal punctuation (optionally followed by closing quotes or
# brackets) that is followed by whitespace or the end of the text. CJK full stops end
# a sentence even without a following space.
_SENTENCE_END = re.compile(
    r"[.!?\u2026]+[\"'\u201c\u201d\u2019\u00ab\u00bb)\]]*(?=\s|$)"  # Latin and ellipsis, closing quotes after
    r"|[\u3002\uff01\uff1f]+[\"'\u201d\u2019\u300d\u300f)\]]*"  # CJK full stops
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_PAGE_BREAK = re.compile(r"\f")


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span without surrounding whitespace, or None when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _spans_between(text: str, separator: re.Pattern[str]) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in separator.finditer(text):
        if (span := _trimmed(text, start, match.start())) is not None:
            spans.append(span)
        start = match.end()
    if (span := _trimmed(text, start, len(text))) is not None:
        spans.append(span)
    return spans


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences; a paragraph break also ends one (headings carry no full stop)."""
    spans: list[tuple[int, int]] = []
    for para_start, para_end in _spans_between(text, _PARAGRAPH_BREAK):
        start = para_start
        for match in _SENTENCE_END.finditer(text, para_start, para_end):
            if (span := _trimmed(text, start, match.end())) is not None:
                spans.append(span)
            start = match.end()
        if (span := _trimmed(text, start, para_end)) is not None:
            spans.append(span)
    return spans


def unit_spans(text: str, split_by: SplitBy) -> list[tuple[int, int]]:
    """The units of `text` for a strategy, as character spans."""
    if split_by is SplitBy.CHARACTERS:
        return [(i, i + 1) for i in range(len(text))]
    if split_by is SplitBy.WORDS:
        return [m.span() for m in _WORD.finditer(text)]
    if split_by is SplitBy.SENTENCES:
        return sentence_spans(text)
    if split_by is SplitBy.PARAGRAPHS:
        return _spans_between(text, _PARAGRAPH_BREAK)
    if split_by is SplitBy.PAGES:
        return _spans_between(text, _PAGE_BREAK)
    span = _trimmed(text, 0, len(text))
    return [span] if span else []


def chunk_text(text: str, split_by: SplitBy, size: int, overlap: int) -> list[Chunk]:
    """Chunks of `size` units overlapping by `overlap` units. Blank text gives no chunks."""
    if size < 1 or overlap < 0 or (split_by is not SplitBy.NONE and overlap >= size):
        raise ValueError("chunk_size must be >= 1 and chunk_overlap smaller than chunk_size")
    units = unit_spans(text, split_by)
    if split_by is SplitBy.NONE:
        return [Chunk(0, text[s:e], s, e) for s, e in units]
    step = size - overlap
    chunks: list[Chunk] = []
    for first in range(0, len(units), step):
        window = units[first : first + size]
        start, end = window[0][0], window[-1][1]
        piece = text[start:end]
        # Character windows can be all whitespace (runs of blanks between words): skip them.
        if piece.strip():
            chunks.append(Chunk(len(chunks), piece, start, end))
        if first + size >= len(units):
            break
    return chunks
