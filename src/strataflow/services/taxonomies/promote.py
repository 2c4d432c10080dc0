"""Taxonomy nodes from documents: clusters (or a hand-picked selection) suggest the vocabulary.

A node is a document of the taxonomy's node collection whose vector is an *anchor*: the mean of
the referenced documents' stored vectors (`nodes/from-documents`), or a cluster run's centroid
(`from-documents` with `cluster_run`). Nothing is embedded again; only stored vectors are read.

`from-documents` also builds the taxonomy around its nodes in one gesture: a node collection whose
source is the taxonomy (it mirrors the source collection's vector index, so its nodes and the data
they came from are comparable), a retriever searching it with a vector input, and a flat taxonomy
whose input mapping hands each document's own vector to that retriever and copies the matched
node's `label` into `<taxonomy_name>_label` (or `enrichment_target_field`). Each step is checked
before anything is saved, and a failure part-way removes what the earlier steps created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.errors import BadRequestError, ConflictError
from strataflow.ids import new_id
from strataflow.index.records import StoredDocument, timestamp
from strataflow.index.store import DocumentIndex
from strataflow.schemas.retrievers import CreateRetrieverRequest
from strataflow.schemas.taxonomies import (
    CreateNodeFromDocumentsRequest,
    CreateTaxonomyFromDocumentsRequest,
    DocumentRef,
    EnrichmentField,
    FlatTaxonomyConfig,
    InputMapping,
    SourceCollectionInput,
)
from strataflow.services.clusters.crud import get_cluster
from strataflow.services.clusters.runs import get_run
from strataflow.services.clusters.views import group_label
from strataflow.services.collections.crud import vector_table_columns
from strataflow.services.collections.sources import find_collection, get_collection
from strataflow.services.documents.model import random_document_id
from strataflow.services.taxonomies.crud import delete_taxonomy, get_taxonomy, new_taxonomy
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.tables import Collection, Retriever, Taxonomy

QUERY_INPUT = "anchor"


@dataclass
class Anchor:
    """A node's vector and how it was made."""

    vector: list[float]
    used: int
    skipped: list[dict[str, Any]] = field(default_factory=list)


def _definition(collection: Collection, vector_name: str | None, feature_uri: str | None = None) -> dict[str, Any]:
    """The collection's vector index named (storage or display name), of `feature_uri`, or its only one."""
    indexes = list(collection.vector_indexes or [])
    if vector_name:
        found = [d for d in indexes if vector_name in (d["index"]["name"], d.get("name"), d.get("feature_uri"))]
    elif feature_uri:
        found = [d for d in indexes if d.get("feature_uri") == feature_uri]
    else:
        found = indexes if len(indexes) == 1 else []
    if not found:
        raise BadRequestError(
            f"Collection '{collection.collection_name}' has no vector "
            f"{vector_name or feature_uri or '(it has several: name one with vector_name)'}",
            {"vector_indexes": sorted(d["index"]["name"] for d in indexes)},
        )
    return dict(found[0])


def _unit(vector: np.ndarray) -> list[float]:
    norm = float(np.linalg.norm(vector))
    return [float(x) for x in (vector / norm if norm > 0 else vector)]


def anchor_from_documents(
    session: Session, index: DocumentIndex, scope: NamespaceScope, refs: list[DocumentRef], definition: dict[str, Any]
) -> Anchor:
    """The mean of the documents' vectors of `definition`'s feature; the ones that cannot give it are skipped."""
    uri, dims = definition.get("feature_uri"), int(definition["index"]["dimensions"])
    vectors: list[np.ndarray] = []
    skipped: list[dict[str, Any]] = []
    for ref in refs:
        collection = find_collection(session, scope, ref.collection_id)
        reason = None
        if collection is None:
            reason = "collection not found in this namespace"
        else:
            match = [d for d in collection.vector_indexes if d.get("feature_uri") == uri]
            if not match or int(match[0]["index"]["dimensions"]) != dims:
                reason = f"the collection has no vector of feature {uri} ({dims} dimensions)"
            else:
                doc = index.get(collection.collection_id, ref.document_id, True)
                vector = doc.vectors.get(match[0]["index"]["name"]) if doc is not None else None
                if doc is None:
                    reason = "document not found"
                elif vector is None:
                    reason = "the document has no stored vector for this feature"
                else:
                    vectors.append(np.asarray(vector, dtype=np.float64))
        if reason is not None:
            skipped.append({"collection_id": ref.collection_id, "document_id": ref.document_id, "reason": reason})
    if not vectors:
        raise BadRequestError("None of the documents has a stored vector to anchor the node on", {"skipped": skipped})
    return Anchor(_unit(np.mean(vectors, axis=0)), len(vectors), skipped)


def _node(
    collection: Collection,
    definition: dict[str, Any],
    label: str,
    anchor: list[float],
    extra: dict[str, Any],
    provenance: dict[str, Any] | None,
) -> StoredDocument:
    payload: dict[str, Any] = {**extra, "label": label}
    if provenance:
        payload["metadata"] = {**(payload.get("metadata") or {}), "promotion": provenance}
    now = timestamp()
    internal = {
        "namespace_id": collection.namespace_id,
        "lineage": {"source_type": "taxonomy"},
        "metadata": {"ingestion_status": "COMPLETED", "created_by": "taxonomy_promotion"},
    }
    return StoredDocument(
        random_document_id(),
        collection.collection_id,
        payload,
        internal,
        {definition["index"]["name"]: anchor},
        now,
        now,
    )


def _type_of(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, list):
        return {"type": "array"}
    if isinstance(value, dict):
        return {"type": "object"}
    return {"type": "string"}


def _declare(collection: Collection, fields: dict[str, Any]) -> None:
    """Fields the nodes carry join the node collection's schema (so enrichment_fields may name them)."""
    properties = dict((collection.output_schema or {}).get("properties", {}))
    added = {k: _type_of(v) for k, v in fields.items() if k not in properties}
    if added:
        collection.output_schema = {**(collection.output_schema or {}), "properties": {**properties, **added}}


def _flat_node_collection(session: Session, taxonomy: Taxonomy) -> Collection:
    config = dict(taxonomy.config)
    if config.get("taxonomy_type", "flat") != "flat":
        raise BadRequestError(
            "Nodes from documents are added to flat taxonomies; a hierarchical taxonomy's nodes are collections",
            {"taxonomy_type": config.get("taxonomy_type")},
        )
    collection = session.get(Collection, config["source_collection"]["collection_id"])
    if collection is None:
        raise BadRequestError("The taxonomy's node collection no longer exists")
    return collection


def _retriever_id(taxonomy: Taxonomy) -> str | None:
    value = dict(taxonomy.config).get("retriever_id")
    return str(value) if value else None


def add_node(
    session: Session,
    index: DocumentIndex,
    scope: NamespaceScope,
    identifier: str,
    request: CreateNodeFromDocumentsRequest,
) -> dict[str, Any]:
    """POST /v1/taxonomies/{id}/nodes/from-documents: one node, anchored on the documents' mean."""
    taxonomy = get_taxonomy(session, scope, identifier)
    collection = _flat_node_collection(session, taxonomy)
    definition = _definition(collection, request.vector_name)
    anchor = anchor_from_documents(session, index, scope, request.documents, definition)
    node = _node(
        collection, definition, request.node_label, anchor.vector, request.node_fields or {}, request.provenance
    )
    _declare(collection, node.payload)
    index.upsert(collection.collection_id, [node])
    session.commit()
    return _answer(
        taxonomy, collection, definition, [node], anchor, created=False, retriever_id=_retriever_id(taxonomy)
    )


@dataclass
class _Plan:
    """What a one-gesture promotion will create, worked out before anything is created."""

    source: Collection
    definition: dict[str, Any]
    nodes: list[tuple[str, list[float], dict[str, Any]]]  # label, anchor, extra fields
    anchor: Anchor
    members: dict[str, int] | None = None  # cluster id: size, when the nodes are a run's clusters


def _plan(
    session: Session, index: DocumentIndex, scope: NamespaceScope, request: CreateTaxonomyFromDocumentsRequest
) -> _Plan:
    if (request.documents is None) == (request.cluster_run is None):
        raise BadRequestError("Give exactly one source: documents (with node_label) or cluster_run")
    extra = dict(request.node_fields or {})
    if request.documents is not None:
        if not request.node_label:
            raise BadRequestError("node_label is required with documents", {"field": "node_label"})
        first = next((find_collection(session, scope, d.collection_id) for d in request.documents), None)
        if first is None:
            raise BadRequestError(
                "The first document's collection does not exist in this namespace",
                {"collection_id": request.documents[0].collection_id},
            )
        definition = _definition(first, request.vector_name)
        anchor = anchor_from_documents(session, index, scope, request.documents, definition)
        return _Plan(first, definition, [(request.node_label, anchor.vector, extra)], anchor)
    assert request.cluster_run is not None
    cluster = get_cluster(session, scope, request.cluster_run.cluster_id)
    run = get_run(session, cluster, request.cluster_run.run_id)
    if run.status != Status.COMPLETED:
        raise BadRequestError(
            f"Run '{run.run_id}' has not completed ({run.status}); only a completed run's clusters become nodes",
            {"status": run.status},
        )
    uris = list(run.settings.get("feature_uris") or [])
    if cluster.cluster_type != "vector" or len(uris) != 1:
        raise BadRequestError(
            "Only a run of a vector cluster over one feature gives centroids a node collection can hold",
            {"cluster_type": cluster.cluster_type, "feature_uris": uris},
        )
    source = get_collection(session, scope, cluster.collection_ids[0])
    definition = _definition(source, None, uris[0])
    nodes = [
        (
            group_label(run, g),
            _unit(np.asarray(g["centroid"], dtype=np.float64)),
            {**extra, "cluster_id": g["cluster_id"], "keywords": list(g.get("keywords") or [])},
        )
        for g in run.groups
        if g.get("centroid")
    ]
    if not nodes:
        raise BadRequestError(f"Run '{run.run_id}' has no clusters with centroids", {"run_id": run.run_id})
    members = {str(g["cluster_id"]): int(g.get("num_members", 0)) for g in run.groups}
    return _Plan(source, definition, nodes, Anchor([], sum(members.values())), members)


def _node_collection(session: Session, scope: NamespaceScope, plan: _Plan, name: str) -> Collection:
    """The node collection: its source is the taxonomy; its one vector index mirrors the source's."""
    now = utcnow()
    vector = plan.definition["index"]
    return Collection(
        collection_id=new_id("collection"),
        namespace_id=scope.namespace_id,
        collection_name=name,
        description="Nodes of a taxonomy built from documents",
        source={"type": "taxonomy"},
        input_schema={"properties": {}},
        output_schema={
            "properties": {
                "label": {"type": "string"},
                vector["name"]: {
                    "type": "array",
                    "items": {"type": "float"},
                    "dimensions": vector["dimensions"],
                    "description": plan.definition.get("description", ""),
                },
            }
        },
        feature_extractor=dict(plan.source.feature_extractor),
        vector_indexes=[plan.definition],
        source_lineage=[],
        enabled=True,
        metadata_={"taxonomy_nodes": True},
        created_at=now,
        updated_at=now,
    )


def _free_name(session: Session, scope: NamespaceScope, base: str, kind: type[Collection | Retriever]) -> str:
    column = Collection.collection_name if kind is Collection else Retriever.retriever_name
    owner = Collection.namespace_id if kind is Collection else Retriever.namespace_id
    name, n = base, 1
    while session.scalar(select(column).where(owner == scope.namespace_id, column == name)) is not None:
        n += 1
        name = f"{base}_{n}"
    return name


@dataclass(frozen=True)
class RetrieverMaker:
    """Creates and deletes retrievers (the retrievers aggregate's own functions, handed in by the API:
    retrievers already read taxonomies, for the taxonomy_enrich stage)."""

    create: Callable[[Session, NamespaceScope, CreateRetrieverRequest], Retriever]
    delete: Callable[[Session, NamespaceScope, str], str]


def create_from_documents(
    session: Session,
    index: DocumentIndex,
    scope: NamespaceScope,
    request: CreateTaxonomyFromDocumentsRequest,
    retrievers: RetrieverMaker,
) -> dict[str, Any]:
    """POST /v1/taxonomies/from-documents: node collection, retriever, taxonomy and nodes at once."""
    if session.scalar(
        select(Taxonomy.taxonomy_id).where(
            Taxonomy.namespace_id == scope.namespace_id, Taxonomy.taxonomy_name == request.taxonomy_name
        )
    ):
        raise ConflictError(f"Taxonomy '{request.taxonomy_name}' already exists in this namespace")
    plan = _plan(session, index, scope, request)
    collection = _node_collection(
        session, scope, plan, _free_name(session, scope, f"{request.taxonomy_name}_nodes", Collection)
    )
    for _, _, extra in plan.nodes:
        _declare(collection, extra)
    created: list[Any] = []
    index.create_table(collection.collection_id, vector_table_columns(collection))
    try:
        session.add(collection)
        session.commit()
        created.append(collection)
        uri = str(plan.definition["feature_uri"])
        retriever = retrievers.create(
            session,
            scope,
            CreateRetrieverRequest.model_validate(
                {
                    "retriever_name": _free_name(session, scope, f"{request.taxonomy_name}_nodes_search", Retriever),
                    "description": f"Searches the nodes of taxonomy {request.taxonomy_name}",
                    "collection_identifiers": [collection.collection_id],
                    "input_schema": {QUERY_INPUT: {"type": "array", "required": True}},
                    "stages": [
                        {
                            "stage_name": "nodes",
                            "config": {
                                "stage_id": "feature_search",
                                "parameters": {
                                    "searches": [
                                        {"feature_uri": uri, "query": f"{{{{INPUT.{QUERY_INPUT}}}}}", "top_k": 5}
                                    ],
                                    "final_top_k": 5,
                                },
                            },
                        }
                    ],
                }
            ),
        )
        created.append(retriever)
        target = request.enrichment_target_field or f"{request.taxonomy_name}_label"
        config = FlatTaxonomyConfig(
            retriever_id=retriever.retriever_id,
            input_mappings=[InputMapping(input_key=QUERY_INPUT, source_type="vector", path=uri)],
            source_collection=SourceCollectionInput(
                collection_id=collection.collection_id,
                enrichment_fields=[EnrichmentField(field_path="label", target_field=target, merge_mode="replace")],
            ),
        )
        taxonomy = new_taxonomy(session, scope, request.taxonomy_name, request.description, config, {})
        created.append(taxonomy)
        nodes = [
            _node(collection, plan.definition, label, vector, extra, request.provenance)
            for label, vector, extra in plan.nodes
        ]
        index.upsert(collection.collection_id, nodes)
    except BaseException:
        session.rollback()
        _undo(session, scope, created, retrievers)
        index.drop_table(collection.collection_id)
        raise
    return _answer(
        taxonomy,
        collection,
        plan.definition,
        nodes,
        plan.anchor,
        created=True,
        retriever_id=retriever.retriever_id,
        members=plan.members,
    )


def _undo(session: Session, scope: NamespaceScope, created: list[Any], retrievers: RetrieverMaker) -> None:
    """Remove what a failed promotion created, newest first."""
    for row in reversed(created):
        if isinstance(row, Taxonomy):
            delete_taxonomy(session, scope, row.taxonomy_id)
        elif isinstance(row, Retriever):
            retrievers.delete(session, scope, row.retriever_id)
        else:
            stored = session.get(Collection, row.collection_id)
            if stored is not None:
                session.delete(stored)
                session.commit()


def _answer(
    taxonomy: Taxonomy,
    collection: Collection,
    definition: dict[str, Any],
    nodes: list[StoredDocument],
    anchor: Anchor,
    *,
    created: bool,
    retriever_id: str | None,
    members: dict[str, int] | None = None,
) -> dict[str, Any]:
    """TaxonomyNodeFromDocumentsResponse; `members` (cluster id: size) when the nodes came from a run."""
    target = next(
        (
            f.get("target_field") or f["field_path"]
            for f in (taxonomy.config.get("source_collection") or {}).get("enrichment_fields") or []
            if f["field_path"] == "label"
        ),
        None,
    )
    hint = (
        f"Documents of collections that hold {definition.get('feature_uri')} are matched to the nearest node when "
        "the taxonomy is applied (taxonomy_applications, or POST /v1/collections/{id}/apply-taxonomy)"
        + (f"; the node's label is written to '{target}'" if target else "")
    )
    answer: dict[str, Any] = {
        "taxonomy_id": taxonomy.taxonomy_id,
        "taxonomy_name": taxonomy.taxonomy_name,
        "node_document_id": nodes[0].document_id,
        "node_collection_id": collection.collection_id,
        "node_label": str(nodes[0].payload["label"]),
        "vector_name": str(definition["index"]["name"]),
        "vector_dimensions": int(definition["index"]["dimensions"]),
        "documents_used": anchor.used,
        "documents_skipped": anchor.skipped,
        "taxonomy_created": created,
        "retriever_id": retriever_id,
        "enrichment_hint": hint,
        "nodes": None,
    }
    if members is not None:
        answer["nodes"] = [
            {
                "node_document_id": n.document_id,
                "node_label": str(n.payload["label"]),
                "cluster_id": str(n.payload["cluster_id"]),
                "member_count": members.get(str(n.payload["cluster_id"])),
            }
            for n in nodes
        ]
    return answer
