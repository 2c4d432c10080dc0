"""From text runs to layout blocks (paragraph, header, list, table), with plain geometric rules.

No layout model runs here; these are the rules, so that a reader can predict them:

- Runs whose vertical centres line up form a line; runs further apart than
  `horizontal_threshold` points stay separate cells of that line.
- A table is two or more consecutive lines with the same number (≥ 2) of
  cells whose columns overlap line to line, where the cells are narrow
  (none wider than 40% of the text area) so two columns of prose are not
  taken for a table. Its text is rows of tab-separated cells.
- Other cells stack into blocks: a cell joins the block above when the gap
  is at most min(`vertical_threshold`, half the font size), the font size is
  within 15%, and they overlap horizontally.
- A block is a header when it has at most three lines in a font at least
  15% larger than the page's body text; a list when most lines start with a
  bullet or a number; otherwise a paragraph.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from strataflow.extractors.media.pdf_text import Box, TextRun

_BULLET = re.compile(r"^\s*([•◦▪\-–*·]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+")
_NARROW_CELL = 0.4
_HEADER_SCALE = 1.15
_SAME_SIZE = 0.15


@dataclass
class Line:
    cells: list[TextRun]

    @property
    def box(self) -> Box:
        box = self.cells[0].box
        for cell in self.cells[1:]:
            box = box.union(cell.box)
        return box


@dataclass
class Block:
    kind: str  # paragraph | header | list | table | figure
    lines: list[str]
    box: Box
    font_size: float = 0.0
    confidence: float = 1.0
    source: str = "text_layer"  # text_layer | ocr
    cells: list[TextRun] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip()


def group_lines(runs: list[TextRun], horizontal_threshold: float) -> list[Line]:
    """Runs side by side form a line, top to bottom; close runs on a line merge into one cell."""
    lines: list[list[TextRun]] = []
    for run in sorted(runs, key=lambda r: (r.box.centre_y, r.box.x0)):
        if lines:
            last = lines[-1][0].box
            if abs(run.box.centre_y - last.centre_y) < 0.5 * min(run.box.height, last.height):
                lines[-1].append(run)
                continue
        lines.append([run])
    return [Line(_merge_cells(sorted(line, key=lambda r: r.box.x0), horizontal_threshold)) for line in lines]


def _merge_cells(runs: list[TextRun], gap: float) -> list[TextRun]:
    cells = [runs[0]]
    for run in runs[1:]:
        last = cells[-1]
        if run.box.x0 - last.box.x1 <= gap:
            cells[-1] = TextRun(f"{last.text} {run.text}", last.box.union(run.box), max(last.font_size, run.font_size))
        else:
            cells.append(run)
    return cells


def layout_blocks(runs: list[TextRun], vertical_threshold: float, horizontal_threshold: float) -> list[Block]:
    """All blocks of one page's text layer, in reading order (top to bottom, then left to right)."""
    if not runs:
        return []
    lines = group_lines(runs, horizontal_threshold)
    text_area = lines[0].box
    for line in lines[1:]:
        text_area = text_area.union(line.box)
    body_size = _body_font_size(runs)
    blocks: list[Block] = []
    pending: list[TextRun] = []
    for is_table, group in _split_tables(lines, text_area.width, vertical_threshold):
        if is_table:
            blocks += _stack_cells(pending, vertical_threshold, body_size)
            pending = []
            blocks.append(_table_block(group))
        else:
            pending += [cell for line in group for cell in line.cells]
    blocks += _stack_cells(pending, vertical_threshold, body_size)
    return sorted(blocks, key=lambda b: (round(b.box.top), b.box.x0))


def _body_font_size(runs: list[TextRun]) -> float:
    weights: Counter[float] = Counter()
    for run in runs:
        weights[round(run.font_size, 1)] += len(run.text)
    return weights.most_common(1)[0][0]


def _is_table_row(line: Line, area_width: float) -> bool:
    return len(line.cells) >= 2 and all(c.box.width <= _NARROW_CELL * area_width for c in line.cells)


def _columns_match(a: Line, b: Line) -> bool:
    return len(a.cells) == len(b.cells) and all(x.box.overlaps_x(y.box) for x, y in zip(a.cells, b.cells, strict=True))


def _split_tables(lines: list[Line], area_width: float, vertical_threshold: float) -> list[tuple[bool, list[Line]]]:
    """Consecutive runs of lines, each marked table or not."""
    groups: list[tuple[bool, list[Line]]] = []
    i = 0
    while i < len(lines):
        j = i
        while (
            j + 1 < len(lines)
            and _is_table_row(lines[i], area_width)
            and _is_table_row(lines[j + 1], area_width)
            and _columns_match(lines[j], lines[j + 1])
            and lines[j + 1].box.top - lines[j].box.bottom <= max(vertical_threshold, lines[j].box.height)
        ):
            j += 1
        if j > i:
            groups.append((True, lines[i : j + 1]))
        else:
            groups.append((False, [lines[i]]))
        i = j + 1
    return groups


def _table_block(rows: list[Line]) -> Block:
    box = rows[0].box
    for row in rows[1:]:
        box = box.union(row.box)
    cells = [c for row in rows for c in row.cells]
    return Block(
        "table",
        ["\t".join(c.text for c in row.cells) for row in rows],
        box,
        font_size=_body_font_size(cells),
        cells=cells,
    )


def _stack_cells(cells: list[TextRun], vertical_threshold: float, body_size: float) -> list[Block]:
    """Cells join the block above them when close, alike in size and overlapping horizontally."""
    open_blocks: list[Block] = []
    for cell in sorted(cells, key=lambda c: (c.box.top, c.box.x0)):
        target = None
        for block in reversed(open_blocks):
            gap = cell.box.top - block.box.bottom
            close = -0.5 * cell.box.height <= gap <= min(vertical_threshold, 0.5 * cell.font_size)
            alike = abs(cell.font_size - block.font_size) <= _SAME_SIZE * max(block.font_size, 1.0)
            if close and alike and cell.box.overlaps_x(block.box):
                target = block
                break
        if target is None:
            open_blocks.append(Block("paragraph", [cell.text], cell.box, font_size=cell.font_size, cells=[cell]))
        else:
            target.lines.append(cell.text)
            target.cells.append(cell)
            target.box = target.box.union(cell.box)
    for block in open_blocks:
        block.kind = _classify(block, body_size)
    return open_blocks


def _classify(block: Block, body_size: float) -> str:
    if len(block.lines) <= 3 and block.font_size >= _HEADER_SCALE * body_size:
        return "header"
    bulleted = sum(1 for line in block.lines if _BULLET.match(line))
    if bulleted and bulleted * 2 >= len(block.lines):
        return "list"
    return "paragraph"
