"""Request shapes of clusters and their runs (the SDK's CreateClusterRequest and friends)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from strataflow.schemas.common import BodyPaging, RequestModel, SortDirection

Algorithm = Literal[
    "kmeans",
    "dbscan",
    "hdbscan",
    "agglomerative",
    "spectral",
    "gaussian_mixture",
    "mean_shift",
    "optics",
    "leiden",
    "evoc",
    "attribute_based",
    "auto",
]


class FaceClusterMerge(RequestModel):
    """FaceClusterMergeConfig: after the fit, merge groups whose centroids are this similar and that
    also share frames with overlapping boxes or scenes (engine/clusters/face_merge.py)."""

    enabled: bool = True
    centroid_cosine_threshold: float = Field(default=0.55, ge=0.0, le=1.0)
    bbox_iou_threshold: float = Field(default=0.4, ge=0.0, le=1.0)
    scene_jaccard_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    bbox_field: str = Field(default="bbox", min_length=1)
    frame_field: str = Field(default="frame_number", min_length=1)
    scene_field: str = Field(default="scene_id", min_length=1)


class VectorBasedConfig(RequestModel):
    """VectorBasedConfigInput: which vectors, which algorithm, with which parameters."""

    feature_uri: str | None = None
    feature_uris: list[str] | None = Field(default=None, min_length=1)
    clustering_method: Algorithm
    sample_size: int | None = Field(default=None, ge=2, le=1_000_000)
    kmeans_parameters: dict[str, Any] | None = None
    dbscan_parameters: dict[str, Any] | None = None
    hdbscan_parameters: dict[str, Any] | None = None
    algorithm_params: dict[str, Any] | None = None
    multi_feature_strategy: Literal["concatenate", "independent", "weighted"] = "concatenate"
    normalize_features: bool = True
    feature_weights: dict[str, float] | None = None
    weight_learning_config: dict[str, Any] | None = None
    output_strategy: Literal["single", "per_feature"] = "single"
    effective_feature_method: Literal["mean", "median", "medoid"] = "mean"
    enrich_source: bool = False
    face_cluster_merge: FaceClusterMerge | None = None
    vis_n_components: Literal[2, 3] = 2
    layout_stability: Literal["none", "transform", "align"] | None = None
    hierarchical: bool = False
    max_hierarchy_depth: int = Field(default=3, ge=1, le=5)
    preprocessing_steps: list[dict[str, Any]] | None = None


class AttributeBasedConfig(RequestModel):
    attributes: list[str] = Field(min_length=1)
    hierarchical_grouping: bool = False
    aggregation_method: str | None = None


class EnrichmentFieldMapping(RequestModel):
    source_field: str = Field(min_length=1)
    target_field: str = Field(min_length=1, max_length=100)


class SourceEnrichmentConfig(RequestModel):
    field_mappings: list[EnrichmentFieldMapping] | None = None


class LLMLabeling(RequestModel):
    enabled: bool = False
    provider: str | None = None
    model_name: Any = None


class CreateClusterRequest(RequestModel):
    collection_ids: list[str] | None = Field(default=None, min_length=1)
    source_cluster_ids: list[str] | None = None
    cluster_name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    metadata: dict[str, Any] | None = None
    cluster_type: Literal["vector", "attribute"] | None = None
    vector_config: VectorBasedConfig | None = None
    attribute_config: AttributeBasedConfig | None = None
    filters: dict[str, Any] | None = None
    llm_labeling: LLMLabeling | None = None
    enrich_source_collection: bool = False
    source_enrichment_config: SourceEnrichmentConfig | None = None
    auto_execute_on_batch: bool = False
    auto_execute_min_documents: int | None = Field(default=None, ge=0)
    auto_execute_cooldown_seconds: int | None = Field(default=3600, ge=0)


class PatchClusterRequest(RequestModel):
    cluster_name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    metadata: dict[str, Any] | None = None
    llm_labeling: LLMLabeling | None = None
    filters: dict[str, Any] | None = None
    face_cluster_merge: FaceClusterMerge | None = None
    sample_size: int | None = Field(default=None, ge=2, le=1_000_000)
    algorithm_params: dict[str, Any] | None = None
    source_cluster_ids: list[str] | None = None
    layout_stability: Literal["none", "transform", "align"] | None = None


class ListClustersRequest(BodyPaging):
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    search: str | None = None
    case_sensitive: bool = False


class ExecuteClusterRequest(RequestModel):
    """ExecuteClusterByIdRequest: per-run overrides, never stored on the cluster."""

    mode: Literal["full", "assign", "composite"] = "full"
    source_execution_ids: list[str] | None = None
    assignment_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    filters: dict[str, Any] | None = None
    sample_size: int | None = Field(default=None, ge=2, le=1_000_000)
    vis_n_components: Literal[2, 3] | None = None
    defer_visualization: bool | None = None
    layout_stability: Literal["none", "transform", "align"] | None = None
    llm_labeling: LLMLabeling | None = None


class ListClusterExecutionsRequest(RequestModel):
    filters: dict[str, Any] | None = None
    sort: dict[str, Any] | None = None
    search: str | None = None


class PatchLabelsRequest(RequestModel):
    labels: dict[str, str]


class PatchRunNameRequest(RequestModel):
    run_name: str = Field(min_length=1, max_length=255)


class TriggerExecutionConfig(RequestModel):
    collection_ids: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)


class CreateTriggerRequest(RequestModel):
    cluster_id: str = Field(min_length=1)
    execution_config: TriggerExecutionConfig | None = None
    trigger_type: str
    schedule_config: dict[str, Any]
    description: str | None = None
    status: str | None = None


class UpdateTriggerRequest(RequestModel):
    schedule_config: dict[str, Any] | None = None
    description: str | None = None
    status: str | None = None


class ListTriggersRequest(RequestModel):
    cluster_id: str | None = None
    trigger_type: str | None = None
    status: str | None = None
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=1000)
    sort_by: str = Field(default="created_at", min_length=1)  # a trigger field; an unknown one is a 400
    direction: SortDirection = "desc"


class TriggerHistoryRequest(RequestModel):
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=1000)
    # only the firings whose status (their job's, else their own) is this one, in any case
    status_filter: str | None = None
