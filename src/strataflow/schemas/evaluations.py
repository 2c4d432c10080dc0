"""Request shapes of retriever interactions (user signals) and evaluations (datasets, runs, scoring)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, Field

from strataflow.schemas.common import RequestModel, SortOption

InteractionType = Literal[
    "impression",
    "view",
    "click",
    "dwell",
    "positive_feedback",
    "negative_feedback",
    "purchase",
    "add_to_cart",
    "wishlist",
    "long_view",
    "share",
    "bookmark",
    "query_refinement",
    "zero_results",
    "filter_toggle",
    "skip",
    "return_to_results",
    "play",
    "download",
    "save",
    "add_to_project",
    "rating",
]
MAX_BULK_INTERACTIONS = 1000
MAX_DATASET_QUERIES = 10_000


class SearchInteraction(RequestModel):
    feature_id: str = Field(min_length=1, max_length=255, validation_alias=AliasChoices("feature_id", "document_id"))
    interaction_type: list[InteractionType] = Field(min_length=1)
    position: int = Field(ge=0)
    metadata: dict[str, Any] | None = None
    user_id: str | None = Field(default=None, max_length=255)
    session_id: str | None = Field(default=None, max_length=255)
    execution_id: str | None = Field(default=None, max_length=40)
    retriever_id: str | None = Field(default=None, max_length=255)
    query_snapshot: dict[str, Any] | None = None
    document_score: float | None = None
    result_set_size: int | None = Field(default=None, ge=0)
    feature_uri: str | None = Field(default=None, max_length=1024)
    occurred_at: datetime | None = None


class BulkInteractionsRequest(RequestModel):
    interactions: list[SearchInteraction] = Field(min_length=1, max_length=MAX_BULK_INTERACTIONS)


class ListInteractionsRequest(RequestModel):
    execution_id: str | None = None
    retriever_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    feature_id: str | None = None
    interaction_type: str | None = None
    filters: dict[str, Any] | None = None
    sort: SortOption | None = None
    search: str | None = None


class GroundTruthQuery(RequestModel):
    query_id: str = Field(min_length=1, max_length=255)
    query_input: dict[str, Any]
    relevant_documents: list[str]
    relevance_scores: dict[str, int] | None = None


class CreateDatasetRequest(RequestModel):
    dataset_name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    queries: list[GroundTruthQuery] = Field(min_length=1, max_length=MAX_DATASET_QUERIES)
    metadata: dict[str, Any] | None = None


class GenerateFromInteractionsRequest(RequestModel):
    dataset_name: str | None = Field(default=None, min_length=1, max_length=255)
    min_interactions: int = Field(default=5, ge=1)
    lookback_days: int = Field(default=30, ge=1, le=365)
    positive_interaction_types: list[str] | None = None


class EvaluationConfig(RequestModel):
    k_values: list[int] | None = Field(default=None, min_length=1, max_length=20)
    metrics: list[str] | None = None


class StartEvaluationRequest(RequestModel):
    dataset_name: str = Field(min_length=1, validation_alias=AliasChoices("dataset_name", "dataset_id"))
    evaluation_config: EvaluationConfig | None = None


class ScoreItem(RequestModel):
    predicted: list[str] = Field(default_factory=list)
    ground_truth: list[str] = Field(default_factory=list)


class ScorePredictionsRequest(RequestModel):
    predicted: list[str] | None = None
    ground_truth: list[str] | None = None
    items: list[ScoreItem] | None = Field(default=None, max_length=10_000)
    metrics: list[str] | None = None
    k: int | None = Field(default=None, ge=1)
