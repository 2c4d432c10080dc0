"""The contract's status and task-type enums (one place, used by every layer)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"
    SKIPPED = "SKIPPED"
    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"
    SUSPENDED = "SUSPENDED"


TERMINAL = frozenset({Status.COMPLETED, Status.COMPLETED_WITH_ERRORS, Status.FAILED, Status.CANCELED})


class TaskType(StrEnum):
    NAMESPACES_CREATE = "api_namespaces_create"
    NAMESPACES_DELETE = "api_namespaces_delete"
    NAMESPACES_MIGRATIONS_RUN = "api_namespaces_migrations_run"
    BUCKETS_OBJECTS_CREATE = "api_buckets_objects_create"
    BUCKETS_DELETE = "api_buckets_delete"
    BUCKETS_BATCHES_PROCESS = "api_buckets_batches_process"
    BUCKETS_BATCHES_SUBMIT = "api_buckets_batches_submit"
    BUCKETS_UPLOADS_CREATE = "api_buckets_uploads_create"
    BUCKETS_UPLOADS_CONFIRM = "api_buckets_uploads_confirm"
    BUCKETS_UPLOADS_BATCH_CONFIRM = "api_buckets_uploads_batch_confirm"
    COLLECTIONS_DOCUMENTS_CREATE = "api_collections_documents_create"
    COLLECTIONS_DOCUMENTS_BULK_DELETE = "api_collections_documents_bulk_delete"
    COLLECTIONS_EXTRACTION_ARTIFACTS = "api_collections_extraction_artifacts"
    TAXONOMIES_CREATE = "api_taxonomies_create"
    TAXONOMIES_EXECUTE = "api_taxonomies_execute"
    TAXONOMIES_MATERIALIZE = "api_taxonomies_materialize"
    EVALUATIONS_RUN = "api_evaluations_run"
    EVALUATIONS_DATASET_CREATE = "api_evaluations_dataset_create"
    RETRIEVERS_PUBLISH = "api_retrievers_publish"
    COLLECTIONS_EXPORT = "api_collections_export"
    ENGINE_FEATURE_EXTRACTOR_RUN = "engine_feature_extractor_run"
    ENGINE_INFERENCE_RUN = "engine_inference_run"
    ENGINE_OBJECT_PROCESSING = "engine_object_processing"
    ENGINE_CLUSTER_BUILD = "engine_cluster_build"
    THUMBNAIL = "thumbnail"
    VIDEO_SEGMENT = "video_segment"
    AUDIO_SEGMENT = "audio_segment"
    MATERIALIZE = "materialize"
    PLUGIN_CUSTOM = "plugin_custom"
    MODEL_CUSTOM = "model_custom"
