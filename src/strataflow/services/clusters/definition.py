"""A create request turned into the stored definition, with every reference checked.

The stored `config` names what a run needs without re-reading the request: the feature URIs and,
for each collection, the LanceDB column that holds each one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError
from strataflow.schemas.clusters import CreateClusterRequest, VectorBasedConfig
from strataflow.services.clusters.applications import check_auto_settings
from strataflow.services.clusters.preprocessing import check_steps
from strataflow.services.clusters.rules import check_parameters, points_to_cluster, rule_for
from strataflow.services.collections.sources import get_collection
from strataflow.services.documents.crud import where_of
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Collection

NO_LLM = (
    "LLM labeling is not available: no language model is configured on this server; groups are "
    "labelled by their class-based TF-IDF keywords instead"
)
DEFAULT_ENRICHMENT = [
    {"source_field": "cluster_id", "target_field": "cluster_id"},
    {"source_field": "cluster_label", "target_field": "cluster_label"},
    {"source_field": "distance_to_centroid", "target_field": "distance_to_centroid"},
]
ENRICHABLE = {"cluster_id", "cluster_label", "distance_to_centroid", "run_id", "keywords"}


def resolve_collections(session: Session, scope: NamespaceScope, identifiers: list[str]) -> list[Collection]:
    """Collections by id or name, each once, in the order given (an unknown one is a 404)."""
    found: dict[str, Collection] = {}
    for identifier in identifiers:
        collection = get_collection(session, scope, identifier)
        found.setdefault(collection.collection_id, collection)
    return list(found.values())


def feature_columns(collections: list[Collection], uris: list[str]) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """{collection_id: {uri: column}} and {uri: dimensions}; a feature a collection lacks is a 400."""
    columns: dict[str, dict[str, str]] = {}
    dimensions: dict[str, int] = {}
    for collection in collections:
        indexes = {d["feature_uri"]: d["index"] for d in collection.vector_indexes}
        for uri in uris:
            index = indexes.get(uri)
            if index is None:
                raise BadRequestError(
                    f"Collection '{collection.collection_name}' has no feature '{uri}'",
                    {"collection_id": collection.collection_id, "feature_uri": uri, "available": sorted(indexes)},
                )
            dims = int(index["dimensions"])
            if dimensions.setdefault(uri, dims) != dims:
                raise BadRequestError(
                    f"Feature '{uri}' has different dimensions across the collections", {"feature_uri": uri}
                )
            columns.setdefault(collection.collection_id, {})[uri] = str(index["name"])
    return columns, dimensions


def _vector_config(collections: list[Collection], vector: VectorBasedConfig) -> dict[str, Any]:
    uris = list(dict.fromkeys(vector.feature_uris or ([vector.feature_uri] if vector.feature_uri else [])))
    if not uris:
        raise BadRequestError("vector_config needs feature_uris (or feature_uri)")
    if vector.clustering_method == "attribute_based":
        raise BadRequestError("clustering_method 'attribute_based' needs cluster_type 'attribute' and attribute_config")
    if len(uris) > 1 and vector.multi_feature_strategy == "independent":
        raise BadRequestError(
            "multi_feature_strategy 'independent' is not available here (a run assigns each document one group); "
            "create one cluster per feature, or use 'concatenate' or 'weighted'",
            {"field": "multi_feature_strategy"},
        )
    steps = check_steps(vector.preprocessing_steps)
    if vector.weight_learning_config is not None:
        _check_learning(vector.weight_learning_config, len(uris))
    weights = vector.feature_weights or {}
    stray = sorted(set(weights) - set(uris))
    if stray or any(not 0.0 <= w <= 1.0 for w in weights.values()):
        raise BadRequestError(
            "feature_weights needs weights between 0 and 1 for the cluster's feature URIs", {"unknown": stray}
        )
    params = check_parameters(
        vector.clustering_method,
        {
            "kmeans_parameters": vector.kmeans_parameters,
            "dbscan_parameters": vector.dbscan_parameters,
            "hdbscan_parameters": vector.hdbscan_parameters,
            "algorithm_params": vector.algorithm_params,
        },
    )
    if vector.sample_size is not None:
        points_to_cluster(vector.clustering_method, vector.sample_size, vector.sample_size)
    columns, dimensions = feature_columns(collections, uris)
    return {
        "feature_uris": uris,
        "columns": columns,
        "dimensions": dimensions,
        "algorithm": vector.clustering_method,
        "algorithm_params": params,
        "sample_size": vector.sample_size,
        "multi_feature_strategy": vector.multi_feature_strategy,
        "normalize_features": vector.normalize_features,
        "feature_weights": weights,
        "weight_learning": (
            (vector.weight_learning_config or {"method": "bayesian"})
            if vector.multi_feature_strategy == "weighted" and not weights and len(uris) > 1
            else None
        ),
        "effective_feature_method": vector.effective_feature_method,
        "output_strategy": vector.output_strategy,
        "face_cluster_merge": vector.face_cluster_merge.model_dump() if vector.face_cluster_merge else None,
        "vis_n_components": vector.vis_n_components,
        "layout_stability": vector.layout_stability,
        "preprocessing_steps": steps,
        "hierarchical": vector.hierarchical,
        "max_hierarchy_depth": vector.max_hierarchy_depth,
    }


def _check_learning(config: dict[str, Any], features: int) -> None:
    """WeightLearningConfig's values (the SDK checks them too; raw HTTP callers get a 400)."""
    method, metric = config.get("method", "bayesian"), config.get("metric", "silhouette")
    iterations, sample = config.get("max_iterations", 20), config.get("sample_size")
    problems = []
    if method not in ("bayesian", "grid_search"):
        problems.append("method must be 'bayesian' or 'grid_search'")
    if metric not in ("silhouette", "davies_bouldin", "calinski_harabasz"):
        problems.append("metric must be silhouette, davies_bouldin or calinski_harabasz")
    if not isinstance(iterations, int) or not 5 <= iterations <= 100:
        problems.append("max_iterations must be an integer from 5 to 100")
    if sample is not None and (not isinstance(sample, int) or sample < 100):
        problems.append("sample_size must be an integer >= 100")
    if method == "grid_search" and features > 3:
        problems.append("grid_search is limited to 3 features; use 'bayesian'")
    if problems:
        raise BadRequestError(f"Invalid weight_learning_config: {'; '.join(problems)}", {"problems": problems})


def check_filters(collections: list[Collection], filters: dict[str, Any] | None) -> None:
    """Filters every run would apply, compiled against each collection now: an unknown operator or
    a malformed clause is a 400 when the cluster is defined, not a failed execute later."""
    for collection in collections:
        where_of(collection, filters)


def build_config(collections: list[Collection], request: CreateClusterRequest) -> tuple[str, dict[str, Any]]:
    """(cluster_type, config) for a create request; any inconsistency is a 400."""
    check_auto_settings(request.auto_execute_min_documents, request.auto_execute_cooldown_seconds)
    check_filters(collections, request.filters)
    cluster_type = request.cluster_type or (
        "attribute" if request.attribute_config and not request.vector_config else "vector"
    )
    if cluster_type == "vector":
        if request.vector_config is None:
            raise BadRequestError("cluster_type 'vector' needs vector_config")
        config = _vector_config(collections, request.vector_config)
    else:
        if request.attribute_config is None:
            raise BadRequestError("cluster_type 'attribute' needs attribute_config")
        rule_for("kmeans")  # attribute clustering has no algorithm parameters to check
        config = {
            "algorithm": "attribute_based",
            "algorithm_params": {},
            "attributes": list(request.attribute_config.attributes),
            "hierarchical_grouping": request.attribute_config.hierarchical_grouping,
            "aggregation_method": request.attribute_config.aggregation_method,
            "sample_size": None,
            "feature_uris": [],
            "vis_n_components": 2,
        }
    mappings = (
        [m.model_dump() for m in (request.source_enrichment_config.field_mappings or [])]
        if request.source_enrichment_config and request.source_enrichment_config.field_mappings
        else DEFAULT_ENRICHMENT
    )
    unknown = sorted({m["source_field"] for m in mappings} - ENRICHABLE)
    if unknown:
        raise BadRequestError(
            f"Unknown enrichment source field(s): {', '.join(unknown)}",
            {"unknown": unknown, "accepted": sorted(ENRICHABLE)},
        )
    enrich = request.enrich_source_collection or bool(request.vector_config and request.vector_config.enrich_source)
    if enrich and config.get("output_strategy") == "per_feature":
        raise BadRequestError(
            "output_strategy 'per_feature' names the output collections of a cluster that does not enrich "
            "its source collections; drop enrich_source_collection or use output_strategy 'single'",
            {"field": "output_strategy"},
        )
    config.update(
        {
            "enrich_source": enrich,
            "field_mappings": mappings,
            "llm_labeling": request.llm_labeling.model_dump() if request.llm_labeling else None,
            "auto_execute": {
                "on_batch": request.auto_execute_on_batch,
                "min_documents": request.auto_execute_min_documents,
                "cooldown_seconds": request.auto_execute_cooldown_seconds,
            },
        }
    )
    return cluster_type, config


def labeling_errors(config: dict[str, Any]) -> list[str] | None:
    """What the response says when LLM labeling was asked for: this server has no model."""
    labeling = config.get("llm_labeling") or {}
    return [NO_LLM] if labeling.get("enabled") else None
