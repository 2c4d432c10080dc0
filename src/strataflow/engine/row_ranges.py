"""Which rows of a tier's manifest are done: sorted, disjoint [start, end) ranges of row indices.

A tier's checkpoint (engine/tiers/executor.py) records, per collection, the manifest rows whose
output batch committed. The local path reads the manifest in order, so its ranges stay one
prefix; Ray Data streams output batches back in no fixed order, so ranges there have gaps (the
batches still in flight when a worker died). Ranges merge as batches commit, so a checkpoint
holds about as many ranges as there were batches in flight, never one entry per row, however
large the manifest. A worker that takes the tier over drops the done rows before extraction.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence


class RowRanges:
    """A set of manifest row indices, held as merged half-open ranges."""

    def __init__(self, spans: Iterable[Sequence[int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for span in spans:
            start, end = int(span[0]), int(span[1])
            self.add(start, end)

    @classmethod
    def of_indices(cls, indices: Iterable[int | None]) -> RowRanges:
        """The ranges a batch's row indices cover, in whatever order they come (None: no index, skipped)."""
        ranges = cls()
        run_start = run_end = -1
        for index in sorted(i for i in indices if i is not None):
            if index == run_end:
                run_end += 1
                continue
            if run_end > run_start:
                ranges.add(run_start, run_end)
            run_start, run_end = index, index + 1
        if run_end > run_start:
            ranges.add(run_start, run_end)
        return ranges

    def add(self, start: int, end: int) -> int:
        """Cover rows [start, end); answer how many of them were not covered before."""
        if start < 0 or end < start:
            raise ValueError(f"not a row range: [{start}, {end})")
        if start == end:
            return 0
        # Every range that overlaps or touches [start, end) merges with it.
        first = bisect.bisect_left(self._ends, start)
        last = bisect.bisect_right(self._starts, end)
        overlap = sum(max(0, min(end, self._ends[i]) - max(start, self._starts[i])) for i in range(first, last))
        added = (end - start) - overlap
        if first < last:
            start, end = min(start, self._starts[first]), max(end, self._ends[last - 1])
        self._starts[first:last] = [start]
        self._ends[first:last] = [end]
        return added

    def update(self, other: RowRanges) -> int:
        """Cover every row `other` covers; answer how many were new."""
        return sum(self.add(start, end) for start, end in other)

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int):
            return False
        at = bisect.bisect_right(self._starts, index) - 1
        return at >= 0 and index < self._ends[at]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        """How many rows are covered."""
        return sum(end - start for start, end in self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowRanges) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"RowRanges({self.spans()})"

    def spans(self) -> list[list[int]]:
        """The ranges as JSON holds them: [[start, end], ...]."""
        return [[start, end] for start, end in self]

    def gaps(self, total: int) -> Iterator[tuple[int, int]]:
        """The ranges of rows in [0, total) that are not covered."""
        at = 0
        for start, end in self:
            if start >= total:
                break
            if start > at:
                yield at, start
            at = max(at, end)
        if at < total:
            yield at, total
