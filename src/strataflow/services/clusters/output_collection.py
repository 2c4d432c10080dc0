"""A vector cluster's output collection (when it does not enrich its source collections).

Created with the cluster; its source is the cluster (`{"type": "cluster", "cluster_id": ...}`), so no
batch ever writes it. Each completed run replaces its documents: one centroid document per group
(`is_centroid: true`, the centroid as its vector, label, keywords, member count) and one member
document per clustered source document (`is_centroid: false`, `cluster_id`, `cluster_label`,
`source_document_id`, `source_collection_id`, `distance_to_centroid`). Every document carries the
`run_id` that wrote it (engine/clusters/output_documents.py writes and swaps them).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.ids import new_id
from strataflow.index.store import DocumentIndex
from strataflow.services.collections.crud import vector_table_columns
from strataflow.services.collections.sources import dependants, root_bucket_ids
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Cluster, Collection

FIELDS: dict[str, dict[str, Any]] = {
    "is_centroid": {"type": "boolean"},
    "cluster_id": {"type": "string"},
    "cluster_label": {"type": "string"},
    "keywords": {"type": "array", "items": {"type": "string"}},
    "member_count": {"type": "integer"},
    "source_document_id": {"type": "string"},
    "source_collection_id": {"type": "string"},
    "distance_to_centroid": {"type": "number"},
    "run_id": {"type": "string"},
}


def _free_name(session: Session, scope: NamespaceScope, base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name in taken or (
        session.scalar(
            select(Collection.collection_id).where(
                Collection.namespace_id == scope.namespace_id, Collection.collection_name == name
            )
        )
        is not None
    ):
        n += 1
        name = f"{base}_{n}"
    return name


def build_output_collections(
    session: Session, scope: NamespaceScope, cluster: Cluster, inputs: list[Collection], config: dict[str, Any]
) -> list[Collection]:
    """The (unsaved) output collections: one holding every feature (`output_strategy: single`), or
    one per feature (`per_feature`, with several features), named `<cluster>_<index name>_output`."""
    uris = list(config["feature_uris"])
    if config.get("output_strategy") != "per_feature" or len(uris) < 2:
        return [build_output_collection(session, scope, cluster, inputs, uris)]
    made: list[Collection] = []
    for uri in uris:
        index = next(d["index"]["name"] for d in inputs[0].vector_indexes if d.get("feature_uri") == uri)
        made.append(build_output_collection(session, scope, cluster, inputs, [uri], f"_{index}", made))
    return made


def build_output_collection(
    session: Session,
    scope: NamespaceScope,
    cluster: Cluster,
    inputs: list[Collection],
    feature_uris: list[str],
    suffix: str = "",
    taken: list[Collection] | None = None,
) -> Collection:
    """The (unsaved) output collection: the inputs' vector index of each clustered feature."""
    first = inputs[0]
    definitions = [d for uri in feature_uris for d in first.vector_indexes if d.get("feature_uri") == uri]
    properties = dict(FIELDS)
    for definition in definitions:
        properties[definition["index"]["name"]] = {
            "type": "array",
            "items": {"type": "float"},
            "dimensions": definition["index"]["dimensions"],
            "description": definition.get("description", ""),
        }
    now = utcnow()
    return Collection(
        collection_id=new_id("collection"),
        namespace_id=scope.namespace_id,
        collection_name=_free_name(
            session, scope, f"{cluster.cluster_name}{suffix}_output", {c.collection_name for c in taken or []}
        ),
        description=f"Centroids and members of cluster {cluster.cluster_name}"
        + (f" ({', '.join(feature_uris)})" if suffix else ""),
        source={
            "type": "cluster",
            "cluster_id": cluster.cluster_id,
            "inherited_bucket_ids": sorted({b for c in inputs for b in root_bucket_ids(c)}),
        },
        input_schema={"properties": {}},
        output_schema={"properties": properties},
        feature_extractor=dict(first.feature_extractor),
        vector_indexes=definitions,
        source_lineage=[],
        enabled=True,
        metadata_={"cluster_output": cluster.cluster_id},
        created_at=now,
        updated_at=now,
    )


def create_table(index: DocumentIndex, collection: Collection) -> None:
    index.create_table(collection.collection_id, vector_table_columns(collection))


def output_collection_ids(config: dict[str, Any]) -> list[str]:
    """The cluster's output collections (one, or one per feature); clusters from before
    `output_strategy` stored a single `output_collection_id`."""
    if config.get("output_collection_ids"):
        return [str(c) for c in config["output_collection_ids"]]
    value = config.get("output_collection_id")
    return [str(value)] if value else []


def remove_output_collections(session: Session, cluster: Cluster) -> list[str]:
    """With the cluster: its output collections, except those another collection reads from (they stay)."""
    removed = []
    for collection_id in output_collection_ids(cluster.config):
        row = session.get(Collection, collection_id)
        if row is None or dependants(session, row.collection_id):
            continue
        session.delete(row)
        removed.append(row.collection_id)
    return removed
