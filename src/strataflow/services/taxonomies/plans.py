"""A stored taxonomy (one version) turned into a ready JoinPlan: retrievers and collections loaded."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError
from strataflow.schemas.taxonomies import EnrichmentField, InputMapping
from strataflow.services.taxonomies.join import JoinPlan, NodeSearch
from strataflow.store.tables import Collection, Retriever, Taxonomy

STYLES = ("full_chain", "best_match", "combined")  # HierarchicalEnrichmentStyle
DEFAULT_STYLE = "combined"


def _collection(session: Session, collection_id: str) -> Collection:
    row = session.get(Collection, collection_id)
    if row is None:
        raise BadRequestError(
            f"The taxonomy's reference collection '{collection_id}' no longer exists", {"collection_id": collection_id}
        )
    return row


def _search(
    session: Session,
    node_key: str,
    retriever_id: str,
    mappings: list[dict[str, Any]],
    fields: list[dict[str, Any]] | None,
    target: Collection | None,
    **extra: Any,
) -> NodeSearch:
    retriever = session.get(Retriever, retriever_id)
    if retriever is None:
        raise BadRequestError(
            f"The taxonomy's retriever '{retriever_id}' no longer exists", {"retriever_id": retriever_id}
        )
    collections = [_collection(session, cid) for cid in retriever.collection_ids]
    columns = {d["feature_uri"]: d["index"]["name"] for d in target.vector_indexes} if target else {}
    parsed = [InputMapping.model_validate(m) for m in mappings]
    for mapping in parsed:  # a vector named by feature URI reads the target's storage column
        if mapping.source_type == "vector" and mapping.path in columns:
            mapping.path = columns[mapping.path]
    return NodeSearch(
        node_key,
        collections,
        list(retriever.stages),
        dict(retriever.input_schema),
        parsed,
        [EnrichmentField.model_validate(f) for f in fields] if fields is not None else None,
        **extra,
    )


def field_prefix(taxonomy_name: str) -> str:
    """The prefix of the fields a hierarchical assignment writes: the taxonomy's name as an identifier."""
    return re.sub(r"\W", "_", taxonomy_name).strip("_") or "taxonomy"


def join_plan(
    session: Session,
    taxonomy: Taxonomy,
    config: dict[str, Any],
    version: int,
    target: Collection | None = None,
    style: str | None = None,
    filters: dict[str, Any] | None = None,
) -> JoinPlan:
    kind = config.get("taxonomy_type", "flat")
    plan = JoinPlan(
        taxonomy.taxonomy_id,
        taxonomy.taxonomy_name,
        version,
        kind,
        [],
        top_k=int(config.get("top_k") or 1),
        min_score=float(config.get("min_score") or 0.0),
        path_field=config.get("path_field"),
        path_separator=config.get("path_separator") or "/",
        style=style or DEFAULT_STYLE,
        field_prefix=field_prefix(taxonomy.taxonomy_name),
        filters=filters or None,
    )
    if kind == "flat":
        source = config["source_collection"]
        plan.searches.append(
            _search(
                session,
                source["collection_id"],
                config["retriever_id"],
                config["input_mappings"],
                source.get("enrichment_fields"),
                target,
            )
        )
    elif plan.path_field is None:
        for node in config.get("hierarchical_nodes") or []:
            plan.searches.append(
                _search(
                    session,
                    node["collection_id"],
                    node["retriever_id"],
                    node.get("input_mappings") or config.get("input_mappings") or [],
                    node.get("enrichment_fields") or [],
                    target,
                    label=node.get("label"),
                    parent_key=node.get("parent_collection_id"),
                )
            )
    return plan
