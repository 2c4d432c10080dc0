"""Tier resolution over collection sources."""

from __future__ import annotations

import pytest

from strataflow.errors import BadRequestError
from strataflow.services.collections.dag import CollectionNode, find_cycle, refuse_cycles, resolve_tiers, scoped_tiers


def node(cid: str, source_type: str, *sources: str, enabled: bool = True) -> CollectionNode:
    return CollectionNode(cid, enabled, source_type, tuple(sources))


def test_bucket_chunks_frames_scenes() -> None:
    graph = [
        node("col_chunks", "bucket", "bkt_a"),
        node("col_frames", "bucket", "bkt_a", "bkt_b"),
        node("col_scenes", "collection", "col_frames"),
        node("col_summary", "collection", "col_scenes", "col_chunks"),
        node("col_other", "bucket", "bkt_b"),
        node("col_of_other", "collection", "col_other"),
    ]
    assert resolve_tiers("bkt_a", graph) == [["col_chunks", "col_frames"], ["col_scenes"], ["col_summary"]]
    assert resolve_tiers("bkt_b", graph) == [["col_frames", "col_other"], ["col_of_other", "col_scenes"]]


def test_disabled_collections_cut_their_branch() -> None:
    graph = [
        node("col_a", "bucket", "bkt"),
        node("col_b", "collection", "col_a", enabled=False),
        node("col_c", "collection", "col_b"),
    ]
    assert resolve_tiers("bkt", graph) == [["col_a"]]


def test_nothing_consumes_the_bucket() -> None:
    assert resolve_tiers("bkt_x", [node("col_a", "bucket", "bkt_y")]) == []


def test_cycles_are_found_and_refused() -> None:
    graph = [node("col_a", "bucket", "bkt"), node("col_b", "collection", "col_c"), node("col_c", "collection", "col_b")]
    assert find_cycle(graph) == ["col_b", "col_c", "col_b"]
    with pytest.raises(BadRequestError, match="cycle"):
        refuse_cycles(graph)
    assert resolve_tiers("bkt", graph) == [["col_a"]]
    assert find_cycle(graph[:1]) is None


def test_a_scope_keeps_its_collections_downstream_at_their_tiers() -> None:
    graph = [
        node("col_chunks", "bucket", "bkt_a"),
        node("col_frames", "bucket", "bkt_a"),
        node("col_scenes", "collection", "col_frames"),
        node("col_summary", "collection", "col_scenes", "col_chunks"),
        node("col_other", "bucket", "bkt_b"),
    ]
    assert scoped_tiers("bkt_a", graph) == resolve_tiers("bkt_a", graph)
    assert scoped_tiers("bkt_a", graph, ["col_chunks"]) == [["col_chunks"], ["col_summary"]]
    # Naming a collection and one that reads it still runs them tiers apart (`roots` would not).
    assert scoped_tiers("bkt_a", graph, ["col_scenes", "col_frames"]) == [
        ["col_frames"],
        ["col_scenes"],
        ["col_summary"],
    ]
    assert scoped_tiers("bkt_a", graph, ["col_scenes"]) == [["col_scenes"], ["col_summary"]]
    assert scoped_tiers("bkt_a", graph, ["col_other"]) == []  # not fed by this bucket
