"""Request shapes of taxonomies (the SDK's CreateTaxonomyRequest, FlatTaxonomyConfigInput, ...)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from strataflow.schemas.common import BodyPaging, RequestModel


class InputMapping(RequestModel):
    """How one retriever input is built from the document being enriched."""

    input_key: str = Field(min_length=1)
    source_type: Literal["payload", "literal", "vector", "blob"] = "payload"
    path: str | None = None
    override: Any = None


class EnrichmentField(RequestModel):
    """A field copied from the matched node, renamed by `target_field`."""

    field_path: str = Field(min_length=1)
    target_field: str | None = None
    merge_mode: Literal["replace", "append"] = "replace"

    @property
    def target(self) -> str:
        return self.target_field or self.field_path


class SourceCollectionInput(RequestModel):
    collection_id: str = Field(min_length=1)
    enrichment_fields: list[EnrichmentField] | None = None


class FlatTaxonomyConfig(RequestModel):
    taxonomy_type: Literal["flat"] = "flat"
    retriever_id: str = Field(min_length=1)
    input_mappings: list[InputMapping] = Field(min_length=1)
    source_collection: SourceCollectionInput
    top_k: int = Field(default=1, ge=1, le=50)
    min_score: float = Field(default=0.0, ge=-1.0, le=1.0)  # a Strataflow extension; 0 keeps every hit
    step_analytics: dict[str, Any] | None = None


class HierarchicalNodeInput(RequestModel):
    collection_id: str = Field(pattern=r"^col_[a-zA-Z0-9_]+$")
    parent_collection_id: str | None = Field(default=None, pattern=r"^col_[a-zA-Z0-9_]+$")
    label: str | None = None
    summary: str | None = None
    keywords: list[str] | None = None
    retriever_id: str | None = None
    enrichment_fields: list[EnrichmentField] | None = None
    input_mappings: list[InputMapping] | None = None
    inferred: bool | None = None  # set on the nodes an inference_strategy found


class HierarchicalTaxonomyConfig(RequestModel):
    taxonomy_type: Literal["hierarchical"] = "hierarchical"
    retriever_id: str | None = None
    input_mappings: list[InputMapping] | None = None
    inference_strategy: Literal["schema", "cluster", "llm"] | None = None
    inference_collections: list[str] | None = None
    llm_provider: str | None = None
    llm_model: str | None = None
    cluster_ids: list[str] | None = None
    cluster_overlap_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    hierarchical_nodes: list[HierarchicalNodeInput] | None = None
    path_field: str | None = None
    path_separator: str = Field(default="/", min_length=1)
    top_k: int = Field(default=1, ge=1, le=50)
    min_score: float = Field(default=0.0, ge=-1.0, le=1.0)
    step_analytics: dict[str, Any] | None = None


TaxonomyConfig = Annotated[FlatTaxonomyConfig | HierarchicalTaxonomyConfig, Field(discriminator="taxonomy_type")]


class CreateTaxonomyRequest(RequestModel):
    taxonomy_name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    config: TaxonomyConfig
    metadata: dict[str, Any] | None = None


class PatchTaxonomyRequest(RequestModel):
    taxonomy_name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    metadata: dict[str, Any] | None = None


class CreateVersionRequest(RequestModel):
    """A new version: a new config (and optionally description); the old version stays readable."""

    config: TaxonomyConfig
    description: str | None = None


class CloneTaxonomyRequest(RequestModel):
    taxonomy_name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    config: TaxonomyConfig | None = None


class ListTaxonomiesRequest(BodyPaging):
    search: str | None = None
    filters: dict[str, Any] | None = None
    sorts: list[dict[str, Any]] | None = None
    sort: dict[str, Any] | None = None
    case_sensitive: bool = False


class ExecuteTaxonomyRequest(RequestModel):
    """A dry run: enrich the given documents and return them; nothing is written."""

    source_documents: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)
    taxonomy: dict[str, Any] | None = None  # the SDK sends the model it fetched; the stored one is used
    join_mode: str | None = None


class ApplyTaxonomyRequest(RequestModel):
    taxonomy_id: str = Field(min_length=1)
    scroll_filters: dict[str, Any] | None = None
    batch_size: int = Field(default=1000, ge=100, le=5000)
    parallelism: int = Field(default=4, ge=1, le=20)
    budget_limits: dict[str, Any] | None = None


class DocumentRef(RequestModel):
    collection_id: str = Field(min_length=1)
    document_id: str = Field(min_length=1)


class ClusterRunSource(RequestModel):
    cluster_id: str = Field(min_length=1)
    run_id: str = Field(min_length=1)


class CreateNodeFromDocumentsRequest(RequestModel):
    """A node whose anchor is the mean of the given documents' stored vectors."""

    node_label: str = Field(min_length=1, max_length=255)
    documents: list[DocumentRef] = Field(min_length=1, max_length=200)
    node_fields: dict[str, Any] | None = None
    vector_name: str | None = None
    provenance: dict[str, Any] | None = None


class CreateTaxonomyFromDocumentsRequest(RequestModel):
    """A flat taxonomy (node collection, retriever, taxonomy) and its nodes, from documents or a cluster run."""

    taxonomy_name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    enrichment_target_field: str | None = Field(default=None, min_length=1, max_length=255)
    node_label: str | None = Field(default=None, min_length=1, max_length=255)
    documents: list[DocumentRef] | None = Field(default=None, min_length=1, max_length=200)
    cluster_run: ClusterRunSource | None = None
    node_fields: dict[str, Any] | None = None
    vector_name: str | None = None
    provenance: dict[str, Any] | None = None
