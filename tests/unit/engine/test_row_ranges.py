"""The done-row bookkeeping of a tier's checkpoint (engine/row_ranges.py), without Ray.

Output batches of a Ray Data tier commit in no fixed order; the checkpoint merges the row
positions each covers into ranges, and a take-over drops the done rows before the stage.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from strataflow.engine.manifest import ROW_INDEX, unfinished_rows
from strataflow.engine.row_ranges import RowRanges
from strataflow.engine.tiers.executor import done_of
from strataflow.engine.tiers.stage import ExtractionStage


def test_ranges_merge_as_batches_commit_in_any_order() -> None:
    done = RowRanges()
    assert done.add(4, 6) == 2
    assert done.add(0, 2) == 2
    assert done.spans() == [[0, 2], [4, 6]] and len(done) == 4
    assert done.add(2, 4) == 2  # fills the gap: the three become one
    assert done.spans() == [[0, 6]]
    assert done.add(3, 8) == 2  # overlaps: only the new rows count
    assert done.add(10, 12) == 2 and done.add(8, 10) == 2  # touching ranges merge
    assert done.spans() == [[0, 12]] and len(done) == 12
    assert done.add(1, 5) == 0 and done.add(7, 7) == 0
    assert [i in done for i in (0, 11, 12, -1)] == [True, True, False, False]
    with pytest.raises(ValueError):
        done.add(5, 3)


def test_a_batchs_row_indices_become_ranges_and_the_checkpoint_stays_compact() -> None:
    assert RowRanges.of_indices([7, 3, 4, 9, 8, None, 5]).spans() == [[3, 6], [7, 10]]
    assert not RowRanges.of_indices([])
    rows, batch = 10_000, 7
    order = list(range(0, rows, batch))
    random.Random(16).shuffle(order)  # batches come back in no fixed order
    done, seen = RowRanges(), set()
    for step, start in enumerate(order):
        indices = list(range(start, min(start + batch, rows)))
        random.Random(step).shuffle(indices)
        assert done.update(RowRanges.of_indices(indices)) == len(indices)
        seen.update(indices)
        # as compact as the rows allow: one range per run of consecutive done rows
        runs = sum(1 for i in seen if i - 1 not in seen)
        if step % 97 == 0:
            assert len(list(done)) == runs and len(done) == len(seen)
            assert RowRanges(done.spans()) == done  # what the checkpoint stores reads back the same
    assert done.spans() == [[0, rows]]


def test_gaps_are_the_rows_not_done() -> None:
    done = RowRanges([(2, 4), (6, 7), (9, 20)])
    assert list(done.gaps(12)) == [(0, 2), (4, 6), (7, 9)]
    assert list(RowRanges().gaps(3)) == [(0, 3)]
    assert list(RowRanges([(0, 3)]).gaps(3)) == []


def test_a_take_over_reads_only_the_rows_not_done_with_their_positions() -> None:
    table = pa.table({"row_id": [f"r{i}" for i in range(10)]})
    left = unfinished_rows(table, RowRanges([(0, 3), (5, 6), (8, 10)]))
    assert left.column("row_id").to_pylist() == ["r3", "r4", "r6", "r7"]
    assert left.column(ROW_INDEX).to_pylist() == [3, 4, 6, 7]
    assert unfinished_rows(table, RowRanges()).column(ROW_INDEX).to_pylist() == list(range(10))
    assert unfinished_rows(table, RowRanges([(0, 10)])).num_rows == 0


def test_a_checkpoint_without_ranges_is_a_prefix() -> None:
    """The local path's checkpoints before ranges existed: the first `rows_read` rows."""
    assert done_of({"rows_read": 4}).spans() == [[0, 4]]
    assert done_of({}).spans() == []
    assert done_of({"rows_read": 3, "done": [[0, 1], [5, 7]]}).spans() == [[0, 1], [5, 7]]


def test_rows_the_stage_does_not_run_keep_their_positions() -> None:
    """A stalled tier's unrun rows still say which manifest rows they are, so they checkpoint too."""
    record = {
        "row_id": "o1",
        "root_object_id": "o1",
        "root_bucket_id": "b",
        "source_type": "bucket",
        "source_object_id": "o1",
        "source_document_id": None,
        "source_collection_id": None,
        "lineage_path": "",
        "lineage_chain": "[]",
        "payload": "{}",
        ROW_INDEX: 41,
    }
    out = ExtractionStage.unrun(None, None, pa.Table.from_pylist([record]), "stalled").to_pylist()
    assert [(r["row_id"], r["status"], r[ROW_INDEX]) for r in out] == [("o1", "failed", 41)]
