"""Where a collection reads from: buckets or upstream collections, and the DAG they form.

A collection whose source is a **taxonomy** (`{"type": "taxonomy", "collection_id": ...}`) holds
the enriched output of the taxonomies its upstream collection applies with
`target_collection_id` set to it: in the DAG, batches and lineage it is a collection reading its
upstream collection(s), one tier later. A taxonomy source without an upstream collection is a
taxonomy's node collection (made by from-documents): no batch writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError, not_found
from strataflow.schemas.collections import SourceConfig
from strataflow.services.buckets.crud import get_bucket
from strataflow.services.collections.dag import CollectionNode
from strataflow.services.collections.schema import merged_schema
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Collection, CollectionSource

MAX_DEPTH = 32  # tiers in one DAG; deeper chains are refused as a safety net


@dataclass
class ResolvedSource:
    """A validated source: its stored config, the schema it offers, and its upstream rows."""

    config: dict[str, Any]
    input_schema: dict[str, Any]
    from_bucket: bool
    bucket_ids: list[str] = field(default_factory=list)
    upstream: list[Collection] = field(default_factory=list)

    @property
    def edges(self) -> list[tuple[str, str]]:
        # A taxonomy source reads its upstream collection(s): the same edges as a collection source.
        if self.from_bucket:
            return [("bucket", b) for b in self.bucket_ids]
        return [("collection", c.collection_id) for c in self.upstream]


def find_collection(session: Session, scope: NamespaceScope, identifier: str) -> Collection | None:
    """By id first, then by name, inside the namespace."""
    base = select(Collection).where(Collection.namespace_id == scope.namespace_id)
    row = session.scalar(base.where(Collection.collection_id == identifier))
    return row or session.scalar(base.where(Collection.collection_name == identifier))


def get_collection(session: Session, scope: NamespaceScope, identifier: str) -> Collection:
    row = find_collection(session, scope, identifier)
    if row is None:
        raise not_found("Collection", identifier)
    return row


def resolve_source(session: Session, scope: NamespaceScope, source: SourceConfig, new_name: str) -> ResolvedSource:
    if source.source_namespace_id not in (None, scope.namespace_id, scope.namespace_name):
        raise BadRequestError(
            "Sources in another namespace are not supported", {"source_namespace_id": source.source_namespace_id}
        )
    if source.type == "bucket":
        return _bucket_source(session, scope, source)
    if source.type in ("collection", "taxonomy"):
        return _collection_source(session, scope, source, new_name)
    raise BadRequestError(
        f"Source type '{source.type}' is not supported; use 'bucket', 'collection' or 'taxonomy'",
        {"source_type": source.type},
    )


def source_kind(source: dict[str, Any] | None) -> str:
    """How the engine reads a stored source: 'bucket', 'collection' (upstream documents, which a
    taxonomy source reads too), or 'taxonomy' (a node collection: nothing upstream)."""
    source = source or {}
    kind = str(source.get("type", "bucket"))
    if kind == "taxonomy":
        return "collection" if upstream_ids_of(source) else "taxonomy"
    return kind


def upstream_ids_of(source: dict[str, Any]) -> list[str]:
    return list(source.get("collection_ids") or ([source["collection_id"]] if source.get("collection_id") else []))


def _bucket_source(session: Session, scope: NamespaceScope, source: SourceConfig) -> ResolvedSource:
    if source.collection_id or source.collection_ids:
        raise BadRequestError("A bucket source takes bucket_ids, not collection_id(s)")
    identifiers = list(source.bucket_ids or ([source.bucket_id] if source.bucket_id else []))
    if not identifiers:
        raise BadRequestError("A bucket source needs bucket_ids", {"field": "source.bucket_ids"})
    buckets = [get_bucket(session, scope, identifier) for identifier in dict.fromkeys(identifiers)]
    bucket_ids = list(dict.fromkeys(b.bucket_id for b in buckets))
    schema = merged_schema({b.bucket_id: b.bucket_schema for b in buckets}, "bucket")
    config: dict[str, Any] = {"type": "bucket", "bucket_ids": bucket_ids}
    if source.source_filters:
        config["source_filters"] = source.source_filters
    return ResolvedSource(config, schema, True, bucket_ids=bucket_ids)


def _collection_source(session: Session, scope: NamespaceScope, source: SourceConfig, new_name: str) -> ResolvedSource:
    if source.bucket_ids or source.bucket_id:
        raise BadRequestError(f"A {source.type} source takes collection_id or collection_ids, not bucket_ids")
    if source.collection_id and source.collection_ids:
        raise BadRequestError("Give collection_id or collection_ids, not both")
    identifiers = list(source.collection_ids or ([source.collection_id] if source.collection_id else []))
    if not identifiers:
        what = (
            "the collection whose taxonomy output it holds (that collection's taxonomy_applications name "
            "this one as target_collection_id)"
            if source.type == "taxonomy"
            else "the collection(s) it reads"
        )
        raise BadRequestError(
            f"A {source.type} source needs collection_id or collection_ids: {what}", {"field": "source.collection_id"}
        )
    if new_name in identifiers:
        raise BadRequestError("A collection cannot read from itself", {"collection": new_name})
    upstream = [get_collection(session, scope, identifier) for identifier in dict.fromkeys(identifiers)]
    check_acyclic(session, [c.collection_id for c in upstream])
    schema = merged_schema({c.collection_id: c.output_schema for c in upstream}, "collection")
    ids = [c.collection_id for c in upstream]
    inherited = sorted({b for c in upstream for b in root_bucket_ids(c)})
    config: dict[str, Any] = {"type": source.type, "inherited_bucket_ids": inherited}
    if len(ids) == 1:
        config["collection_id"] = ids[0]
    else:
        config["collection_ids"] = ids
    if source.source_filters:
        config["source_filters"] = source.source_filters
    return ResolvedSource(config, schema, False, upstream=upstream)


def root_bucket_ids(collection: Collection) -> list[str]:
    """The buckets at the root of a collection's chain."""
    source = collection.source
    return list(source.get("bucket_ids") or source.get("inherited_bucket_ids") or [])


def upstream_ids(collection: Collection) -> list[str]:
    return upstream_ids_of(collection.source or {})


def check_acyclic(session: Session, start: list[str]) -> None:
    """Walk upstream from `start`; a collection met again on its own path is a cycle."""

    def visit(collection_id: str, path: tuple[str, ...]) -> None:
        if collection_id in path:
            raise BadRequestError("Collection sources form a cycle", {"cycle": [*path, collection_id]})
        if len(path) >= MAX_DEPTH:
            raise BadRequestError(f"Collection chains may be at most {MAX_DEPTH} deep")
        parents = session.scalars(
            select(CollectionSource.source_id).where(
                CollectionSource.collection_id == collection_id, CollectionSource.source_type == "collection"
            )
        )
        for parent in parents:
            visit(parent, (*path, collection_id))

    for collection_id in start:
        visit(collection_id, ())


def dependants(session: Session, collection_id: str) -> list[str]:
    """Collections that read from this one."""
    return list(
        session.scalars(
            select(CollectionSource.collection_id).where(
                CollectionSource.source_type == "collection", CollectionSource.source_id == collection_id
            )
        )
    )


def readers_of_bucket(session: Session, bucket_id: str) -> list[str]:
    return list(
        session.scalars(
            select(CollectionSource.collection_id).where(
                CollectionSource.source_type == "bucket", CollectionSource.source_id == bucket_id
            )
        )
    )


def collection_nodes(session: Session, namespace_id: str) -> list[CollectionNode]:
    nodes = []
    for row in session.scalars(select(Collection).where(Collection.namespace_id == namespace_id)):
        source = row.source or {}
        kind = source_kind(source)
        ids = source.get("bucket_ids") if kind == "bucket" else upstream_ids_of(source)
        nodes.append(CollectionNode(row.collection_id, bool(row.enabled), kind, tuple(ids or ())))
    return nodes
