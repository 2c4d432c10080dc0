"""Resolve the collection DAG fed by a bucket into tiers.

Tier 0 holds the enabled collections that read the bucket; tier k+1 holds the
enabled collections whose every source collection sits in tiers 0..k.
Collections in one tier are independent and may run side by side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from strataflow.errors import BadRequestError


@dataclass(frozen=True)
class CollectionNode:
    """What tier resolution needs to know about a collection."""

    collection_id: str
    enabled: bool
    source_type: str  # "bucket" | "collection"
    source_ids: tuple[str, ...]  # bucket ids or upstream collection ids


def resolve_tiers(
    bucket_id: str, collections: Iterable[CollectionNode], roots: Iterable[str] | None = None
) -> list[list[str]]:
    """Tiers of collection ids reachable from `bucket_id`; [] when nothing consumes it.

    With `roots`, tier 0 is those collections alone (a trigger re-running one
    collection), followed by whatever depends on them.
    """
    nodes = [c for c in collections if c.enabled]
    placed: dict[str, int] = {}
    tiers: list[list[str]] = []
    if roots is not None:
        wanted = set(roots)
        current = sorted(c.collection_id for c in nodes if c.collection_id in wanted)
    else:
        current = sorted(c.collection_id for c in nodes if c.source_type == "bucket" and bucket_id in c.source_ids)
    downstream = [c for c in nodes if c.source_type == "collection"]
    while current:
        for collection_id in current:
            placed[collection_id] = len(tiers)
        tiers.append(current)
        current = sorted(
            c.collection_id
            for c in downstream
            if c.collection_id not in placed and c.source_ids and all(s in placed for s in c.source_ids)
        )
    return tiers


def scoped_tiers(
    bucket_id: str, collections: Iterable[CollectionNode], scope: Iterable[str] | None = None
) -> list[list[str]]:
    """The bucket's tiers kept to `scope` and every collection downstream of it (all of them without one).

    Unlike `roots`, each kept collection stays at its place in the bucket's whole DAG, so a
    scope naming both a collection and one that reads it still runs them one tier apart.
    """
    nodes = {c.collection_id: c for c in collections if c.enabled}
    tiers = resolve_tiers(bucket_id, nodes.values())
    if scope is None:
        return tiers
    kept = set(scope)
    for tier in tiers:  # tiers come in dependency order: a reader is met after what it reads
        kept.update(cid for cid in tier if any(s in kept for s in nodes[cid].source_ids))
    return [narrowed for narrowed in ([cid for cid in tier if cid in kept] for tier in tiers) if narrowed]


def find_cycle(collections: Iterable[CollectionNode]) -> list[str] | None:
    """A cycle among collection sources, as a list of ids, or None. Used when creating collections."""
    graph = {c.collection_id: [s for s in c.source_ids] for c in collections if c.source_type == "collection"}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def refuse_cycles(collections: Iterable[CollectionNode]) -> None:
    cycle = find_cycle(collections)
    if cycle:
        raise BadRequestError(f"Collection sources form a cycle: {' -> '.join(cycle)}", {"cycle": cycle})
