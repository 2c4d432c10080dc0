"""A PDF page's text layer as runs: stretches of characters on one line with their boxes and font size.

Read character by character through PDFium, with "loose" boxes (the font's
full height, not the ink), so every run on a line has the same height
whatever its letters and vertical gaps compare like for like. Coordinates
are converted to points from the page's top-left corner, which is how
`bbox` is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

_LINE_BREAKS = {"\r", "\n"}


@dataclass(frozen=True)
class Box:
    x0: float
    top: float
    x1: float
    bottom: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def centre_y(self) -> float:
        return (self.top + self.bottom) / 2

    def union(self, other: Box) -> Box:
        return Box(
            min(self.x0, other.x0), min(self.top, other.top), max(self.x1, other.x1), max(self.bottom, other.bottom)
        )

    def overlaps_x(self, other: Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1


@dataclass(frozen=True)
class TextRun:
    text: str
    box: Box
    font_size: float


def page_runs(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, split_gap: float) -> list[TextRun]:
    """Runs in content order; a run ends at a line break, a jump to another line, or a gap > `split_gap` pt."""
    page_height = page.get_height()
    runs: list[TextRun] = []
    chars: list[str] = []
    box: Box | None = None
    sizes: list[float] = []

    def close() -> None:
        nonlocal chars, box, sizes
        text = "".join(chars).strip()
        if text and box is not None:
            runs.append(TextRun(text, box, sorted(sizes)[len(sizes) // 2]))
        chars, box, sizes = [], None, []

    for index in range(textpage.count_chars()):
        char = chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, index))
        if char in _LINE_BREAKS:
            close()
            continue
        left, bottom, right, top = textpage.get_charbox(index, loose=True)
        char_box = Box(left, page_height - top, right, page_height - bottom)
        if box is not None and _starts_new_run(box, char_box, split_gap):
            close()
        if char.isspace() and box is None:
            continue  # a run never starts with a space
        chars.append(char)
        if not char.isspace():
            box = char_box if box is None else box.union(char_box)
            sizes.append(pdfium_c.FPDFText_GetFontSize(textpage.raw, index))
    close()
    return runs


def _starts_new_run(run: Box, char: Box, split_gap: float) -> bool:
    if char.width <= 0 and char.height <= 0:
        return False  # generated characters (implied spaces) have no box
    same_line = abs(char.centre_y - run.centre_y) < 0.5 * max(min(char.height, run.height), 1.0)
    return not same_line or char.x0 - run.x1 > split_gap or char.x1 < run.x0


def count_text_chars(textpage: pdfium.PdfTextPage) -> int:
    """Characters that are not whitespace: near zero on a scanned page."""
    total = 0
    for index in range(textpage.count_chars()):
        if not chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, index)).isspace():
            total += 1
    return total
