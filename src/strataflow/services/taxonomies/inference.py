"""Inferring a hierarchy's nodes (HierarchicalTaxonomyConfigInput.inference_strategy).

The nodes of a hierarchical taxonomy are collections; inference finds which of
`inference_collections` is the parent of which, and the result joins the explicit
`hierarchical_nodes` (an explicit node wins over an inferred one for the same collection):

- `schema`: a collection's parent is the collection whose payload fields are a strict subset of
  its own, the largest such (a child refines its parent's schema); none: it is a root.
- `cluster`: with the current runs of `cluster_ids` (clusters over those collections), each
  collection's *topics* are the groups holding at least TOPIC_SHARE of its clustered documents; a
  collection's parent is the one with more topics covering at least `cluster_overlap_threshold` of
  its own (the broader collection), the best covering first.
- `llm` needs a language model, which this server does not have: a 400 says so.

Inferred nodes use the taxonomy's own `retriever_id` and `input_mappings`, checked like any node.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.errors import BadRequestError
from strataflow.services.clusters.artifact import NOISE, read_batches
from strataflow.services.collections.sources import get_collection
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Cluster, ClusterRun, Collection

TOPIC_SHARE = 0.1


def _fields(collection: Collection) -> frozenset[str]:
    vectors = {d["index"]["name"] for d in collection.vector_indexes}
    return frozenset(set((collection.output_schema or {}).get("properties", {})) - vectors)


def by_schema(collections: list[Collection]) -> dict[str, str | None]:
    parents: dict[str, str | None] = {}
    for child in collections:
        mine = _fields(child)
        candidates = [c for c in collections if c is not child and _fields(c) < mine]
        best = max(candidates, key=lambda c: len(_fields(c)), default=None)
        parents[child.collection_id] = best.collection_id if best is not None else None
    return parents


def _topics(session: Session, scope: NamespaceScope, blobs: BlobStore, cluster_ids: list[str]) -> dict[str, set[str]]:
    """Per collection, the groups (cluster:group) holding at least TOPIC_SHARE of its clustered documents."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for identifier in cluster_ids:
        cluster = session.scalar(
            select(Cluster).where(
                Cluster.namespace_id == scope.namespace_id,
                (Cluster.cluster_id == identifier) | (Cluster.cluster_name == identifier),
            )
        )
        run = session.get(ClusterRun, cluster.current_run_id) if cluster and cluster.current_run_id else None
        if cluster is None or run is None or run.artifact_key is None:
            raise BadRequestError(
                f"Cluster '{identifier}' has no completed run to infer the hierarchy from; execute it first",
                {"cluster_id": identifier},
            )
        for batch in read_batches(blobs, run.artifact_key, ["collection_id", "cluster_id"]):
            rows = batch.to_pydict()
            for collection_id, group in zip(rows["collection_id"], rows["cluster_id"], strict=True):
                if group != NOISE:
                    counts[collection_id][f"{cluster.cluster_id}:{group}"] += 1
    return {
        cid: {g for g, n in groups.items() if n >= TOPIC_SHARE * sum(groups.values())} for cid, groups in counts.items()
    }


def by_clusters(collections: list[Collection], topics: dict[str, set[str]], threshold: float) -> dict[str, str | None]:
    parents: dict[str, str | None] = {}
    for child in collections:
        mine = topics.get(child.collection_id, set())
        best: tuple[float, int, str] | None = None
        for other in collections:
            theirs = topics.get(other.collection_id, set())
            if other is child or not mine or len(theirs) <= len(mine):
                continue
            covered = len(mine & theirs) / len(mine)
            if covered >= threshold and (best is None or (covered, -len(theirs)) > best[:2]):
                best = (covered, -len(theirs), other.collection_id)
        parents[child.collection_id] = best[2] if best is not None else None
    return parents


def infer_nodes(session: Session, scope: NamespaceScope, config: Any, blobs: BlobStore | None) -> list[dict[str, Any]]:
    """The inferred hierarchical nodes ({collection_id, parent_collection_id, inferred: True})."""
    strategy = config.inference_strategy
    if strategy == "llm":
        raise BadRequestError(
            "inference_strategy 'llm' needs a language model, which this server does not have; use 'schema' "
            "or 'cluster', or define the nodes with hierarchical_nodes",
            {"inference_strategy": strategy},
        )
    identifiers = list(dict.fromkeys(config.inference_collections or []))
    if len(identifiers) < 2:
        raise BadRequestError(
            "inference_strategy needs at least 2 inference_collections", {"inference_collections": identifiers}
        )
    collections = [get_collection(session, scope, identifier) for identifier in identifiers]
    if strategy == "schema":
        parents = by_schema(collections)
    else:
        if not config.cluster_ids:
            raise BadRequestError("inference_strategy 'cluster' needs cluster_ids", {"field": "cluster_ids"})
        if blobs is None:
            raise BadRequestError("inference_strategy 'cluster' cannot be checked here")
        threshold = float(config.cluster_overlap_threshold)
        parents = by_clusters(collections, _topics(session, scope, blobs, list(config.cluster_ids)), threshold)
    return [
        {"collection_id": c.collection_id, "parent_collection_id": parents[c.collection_id], "inferred": True}
        for c in collections
    ]
