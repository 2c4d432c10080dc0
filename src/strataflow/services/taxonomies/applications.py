"""Where a collection's taxonomy applications write: in place, or into a target collection.

An application (TaxonomyApplicationConfig) without `target_collection_id`, or naming the
collection itself, enriches the collection's own documents. One naming another collection
writes the enriched documents there instead: that target's source is the taxonomy
(`{"type": "taxonomy", "collection_id": <this collection>}`), so it runs one tier after this
collection in every batch, and its documents are enriched as they are written. This
collection's own documents are left as they are.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError
from strataflow.services.collections.sources import dependants, upstream_ids
from strataflow.store.tables import Collection


def valid(collection: Collection) -> list[dict[str, Any]]:
    return [a for a in collection.taxonomy_applications or [] if isinstance(a, dict) and a.get("taxonomy_id")]


def in_place(collection: Collection, application: dict[str, Any]) -> bool:
    return application.get("target_collection_id") in (None, "", collection.collection_id, collection.collection_name)


def ordered(applications: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lower execution_phase first; within a phase, higher priority first."""
    return sorted(applications, key=lambda a: (int(a.get("execution_phase") or 1), -int(a.get("priority") or 0)))


def enriching(session: Session, collection: Collection) -> list[dict[str, Any]]:
    """The applications whose output is this collection's documents, in the order they run: its own
    in-place ones, and those of its upstream collection(s) that name it as their target."""
    found = [a for a in valid(collection) if in_place(collection, a)]
    if (collection.source or {}).get("type") == "taxonomy":
        for upstream_id in upstream_ids(collection):
            upstream = session.get(Collection, upstream_id)
            if upstream is not None:
                found += [a for a in valid(upstream) if a.get("target_collection_id") == collection.collection_id]
    return ordered(found)


def application_of(collection: Collection, taxonomy_id: str) -> dict[str, Any] | None:
    return next((a for a in valid(collection) if a["taxonomy_id"] == taxonomy_id), None)


def written_collection(session: Session, collection: Collection, application: dict[str, Any]) -> Collection:
    """The collection whose documents the application enriches."""
    if in_place(collection, application):
        return collection
    target_id = str(application["target_collection_id"])
    target = session.scalar(
        select(Collection).where(
            Collection.namespace_id == collection.namespace_id,
            (Collection.collection_id == target_id) | (Collection.collection_name == target_id),
        )
    )
    if target is None:
        raise BadRequestError(
            f"target_collection_id '{target_id}' is not a collection of this namespace",
            {"target_collection_id": target_id},
        )
    return target


def check_target_collection(collection: Collection, target: Collection) -> None:
    """A target holds this collection's taxonomy output: its source is the taxonomy, reading this collection."""
    source = target.source or {}
    if source.get("type") != "taxonomy" or collection.collection_id not in upstream_ids(target):
        raise BadRequestError(
            f"target_collection_id '{target.collection_id}' must be a collection whose source is "
            f'{{"type": "taxonomy", "collection_id": "{collection.collection_id}"}}: it holds the enriched '
            "documents of this collection",
            {"target_collection_id": target.collection_id, "target_source": source},
        )


def node_collection_ids(config: dict[str, Any]) -> list[str]:
    """The reference collections a taxonomy searches."""
    ids = []
    if config.get("taxonomy_type", "flat") == "flat":
        ids.append(str(config["source_collection"]["collection_id"]))
    ids += [str(n["collection_id"]) for n in config.get("hierarchical_nodes") or []]
    return ids


def downstream_ids(session: Session, collection_id: str) -> set[str]:
    """This collection and every collection that reads it, directly or not."""
    seen = {collection_id}
    frontier = [collection_id]
    while frontier:
        for reader in dependants(session, frontier.pop()):
            if reader not in seen:
                seen.add(reader)
                frontier.append(reader)
    return seen


def refuse_cycle(session: Session, config: dict[str, Any], collection: Collection, taxonomy_name: str) -> None:
    """Enriching a collection searches the taxonomy's nodes; nodes written from this collection's
    own documents (the collection itself, or one downstream of it, a target included) would make
    the enrichment depend on its own output."""
    derived = downstream_ids(session, collection.collection_id)
    looped = [c for c in node_collection_ids(config) if c in derived]
    if looped:
        raise BadRequestError(
            f"Taxonomy '{taxonomy_name}' searches collection(s) {', '.join(looped)}, which are written from "
            f"collection '{collection.collection_name}' itself: applying it there would be a cycle through "
            "collection sources",
            {"cycle": [collection.collection_id, *looped]},
        )
