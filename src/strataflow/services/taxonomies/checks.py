"""What a taxonomy config must satisfy, checked before anything is saved or applied.

At create (and for a new version or a clone): the retriever exists in this namespace and
reads the reference collection, the input mappings name inputs the retriever has (and give
every input it requires), and the enrichment fields exist in the reference nodes. Where the
taxonomy is applied (a collection's taxonomy_applications, apply-taxonomy): the payload fields
and vectors the mappings read exist in that target collection.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.errors import BadRequestError
from strataflow.schemas.taxonomies import (
    EnrichmentField,
    FlatTaxonomyConfig,
    HierarchicalNodeInput,
    HierarchicalTaxonomyConfig,
    InputMapping,
)
from strataflow.services.collections.sources import get_collection
from strataflow.services.taxonomies.inference import infer_nodes
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Collection, Retriever

TaxonomyConfig = FlatTaxonomyConfig | HierarchicalTaxonomyConfig


def namespace_retriever(session: Session, scope: NamespaceScope, identifier: str) -> Retriever:
    """A retriever of this namespace, by id or name; one of another namespace is refused as such."""
    row = session.scalar(
        select(Retriever).where(
            Retriever.namespace_id == scope.namespace_id,
            (Retriever.retriever_id == identifier) | (Retriever.retriever_name == identifier),
        )
    )
    if row is not None:
        return row
    elsewhere = session.scalar(select(Retriever.namespace_id).where(Retriever.retriever_id == identifier))
    if elsewhere is not None:
        raise BadRequestError(
            f"Retriever '{identifier}' belongs to another namespace; a taxonomy can only use "
            "retrievers of its own namespace",
            {"retriever_id": identifier},
        )
    raise BadRequestError(f"Retriever '{identifier}' does not exist in this namespace", {"retriever_id": identifier})


def check_mappings(retriever: Retriever, mappings: list[InputMapping]) -> None:
    schema = dict(retriever.input_schema or {})
    for mapping in mappings:
        if mapping.source_type == "blob":
            raise BadRequestError(
                "Input mappings of source_type 'blob' are not supported; map a payload field, a literal or a vector",
                {"input_key": mapping.input_key},
            )
        if mapping.source_type in ("payload", "vector") and not mapping.path:
            raise BadRequestError(
                f"Input mapping '{mapping.input_key}' ({mapping.source_type}) needs a path",
                {"input_key": mapping.input_key},
            )
        if mapping.source_type == "literal" and mapping.override is None:
            raise BadRequestError(
                f"Input mapping '{mapping.input_key}' (literal) needs an override value",
                {"input_key": mapping.input_key},
            )
        if mapping.input_key not in schema:
            raise BadRequestError(
                f"Retriever '{retriever.retriever_name}' has no input '{mapping.input_key}'",
                {"input_key": mapping.input_key, "retriever_inputs": sorted(schema)},
            )
    unmapped = sorted(
        name
        for name, spec in schema.items()
        if spec.get("required") and spec.get("default") is None and name not in {m.input_key for m in mappings}
    )
    if unmapped:
        raise BadRequestError(
            f"Retriever '{retriever.retriever_name}' requires input(s) the mappings do not give: {', '.join(unmapped)}",
            {"unmapped_inputs": unmapped},
        )


def node_fields(collection: Collection) -> set[str]:
    return set((collection.output_schema or {}).get("properties", {}))


def check_enrichment_fields(collection: Collection, fields: list[EnrichmentField] | None) -> None:
    known = node_fields(collection)
    absent = sorted({f.field_path for f in fields or [] if f.field_path.split(".")[0] not in known})
    if absent:
        raise BadRequestError(
            f"Enrichment field(s) absent from the nodes of collection '{collection.collection_name}': "
            f"{', '.join(absent)}",
            {"absent_fields": absent, "node_fields": sorted(known)},
        )


def check_search(
    session: Session,
    scope: NamespaceScope,
    retriever_id: str | None,
    mappings: list[InputMapping] | None,
    node_collection: Collection,
    fields: list[EnrichmentField] | None,
) -> Retriever:
    if not retriever_id:
        raise BadRequestError(
            f"No retriever for the nodes of collection '{node_collection.collection_id}'",
            {"collection_id": node_collection.collection_id},
        )
    retriever = namespace_retriever(session, scope, retriever_id)
    if node_collection.collection_id not in retriever.collection_ids:
        raise BadRequestError(
            f"Retriever '{retriever.retriever_name}' does not read the reference collection "
            f"'{node_collection.collection_id}'",
            {"retriever_collection_ids": list(retriever.collection_ids)},
        )
    if not mappings:
        raise BadRequestError("A taxonomy needs input_mappings to build the retriever's inputs")
    check_mappings(retriever, mappings)
    check_enrichment_fields(node_collection, fields)
    return retriever


def check_config(
    session: Session, scope: NamespaceScope, config: TaxonomyConfig, blobs: BlobStore | None = None
) -> dict[str, Any]:
    """The config as stored: retrievers by id, collections by id. Raises on any problem.

    `blobs` lets a hierarchy be inferred from cluster runs (inference_strategy 'cluster')."""
    if isinstance(config, FlatTaxonomyConfig):
        namespace_retriever(session, scope, config.retriever_id)  # another namespace's: said as such, first
        reference = get_collection(session, scope, config.source_collection.collection_id)
        retriever = check_search(
            session,
            scope,
            config.retriever_id,
            config.input_mappings,
            reference,
            config.source_collection.enrichment_fields,
        )
        stored = config.model_dump(exclude_none=True)
        stored["retriever_id"] = retriever.retriever_id
        stored["source_collection"]["collection_id"] = reference.collection_id
        return stored
    return _check_hierarchy(session, scope, config, blobs)


def _with_inferred(
    session: Session, scope: NamespaceScope, config: HierarchicalTaxonomyConfig, blobs: BlobStore | None
) -> HierarchicalTaxonomyConfig:
    """The explicit nodes plus the inferred ones (an explicit node wins for its collection)."""
    inferred = infer_nodes(session, scope, config, blobs)
    explicit = {n.collection_id for n in config.hierarchical_nodes or []}
    added = [HierarchicalNodeInput.model_validate(n) for n in inferred if n["collection_id"] not in explicit]
    return config.model_copy(update={"hierarchical_nodes": [*(config.hierarchical_nodes or []), *added]})


def _check_hierarchy(
    session: Session, scope: NamespaceScope, config: HierarchicalTaxonomyConfig, blobs: BlobStore | None
) -> dict[str, Any]:
    if config.path_field is not None:
        if config.hierarchical_nodes or config.inference_strategy:
            raise BadRequestError(
                "path_field is not combined with hierarchical_nodes or inference_strategy; use one or the other"
            )
        return config.model_dump(exclude_none=True)
    if config.inference_strategy is not None:
        config = _with_inferred(session, scope, config, blobs)
    nodes = config.hierarchical_nodes or []
    if not nodes:
        raise BadRequestError("A hierarchical taxonomy needs hierarchical_nodes or a path_field")
    keys = [n.collection_id for n in nodes]
    if len(set(keys)) != len(keys):
        raise BadRequestError("Each hierarchical node must name a different collection_id")
    parents = {n.collection_id: n.parent_collection_id for n in nodes}
    for node in nodes:
        if node.parent_collection_id is not None and node.parent_collection_id not in parents:
            raise BadRequestError(
                f"Node '{node.collection_id}' names a parent that is not a node: '{node.parent_collection_id}'",
                {"parent_collection_id": node.parent_collection_id},
            )
        seen: set[str] = set()
        key: str | None = node.collection_id
        while key is not None:
            if key in seen:
                raise BadRequestError(f"The hierarchy has a cycle through '{node.collection_id}'")
            seen.add(key)
            key = parents.get(key)
    stored = config.model_dump(exclude_none=True)
    for position, node in enumerate(nodes):
        collection = get_collection(session, scope, node.collection_id)
        retriever = check_search(
            session,
            scope,
            node.retriever_id or config.retriever_id,
            node.input_mappings or config.input_mappings,
            collection,
            node.enrichment_fields,
        )
        stored["hierarchical_nodes"][position]["retriever_id"] = retriever.retriever_id
    return stored


def check_target(config: dict[str, Any], target: Collection) -> None:
    """The payload fields and vectors the mappings read exist in the collection being enriched."""
    vectors = {d["index"]["name"] for d in target.vector_indexes} | {d["feature_uri"] for d in target.vector_indexes}
    fields = set((target.output_schema or {}).get("properties", {})) - vectors
    mappings = [*(config.get("input_mappings") or [])]
    for node in config.get("hierarchical_nodes") or []:
        mappings += node.get("input_mappings") or []
    for mapping in mappings:
        path, kind = mapping.get("path") or "", mapping.get("source_type") or "payload"
        if kind == "payload" and path.split(".")[0] not in fields:
            raise BadRequestError(
                f"Input mapping '{mapping['input_key']}' reads field '{path}', which collection "
                f"'{target.collection_name}' does not have",
                {"path": path, "available_fields": sorted(fields)},
            )
        if kind == "vector" and path not in vectors:
            raise BadRequestError(
                f"Input mapping '{mapping['input_key']}' reads vector '{path}', which collection "
                f"'{target.collection_name}' does not have",
                {"path": path, "available_vectors": sorted(vectors)},
            )
    if config.get("path_field") and config["path_field"].split(".")[0] not in fields:
        raise BadRequestError(
            f"path_field '{config['path_field']}' is not a field of collection '{target.collection_name}'",
            {"path_field": config["path_field"]},
        )
