"""The wire shapes: ClusterMetadata, ClusterExecutionResult, ClusterGroupsResponse."""

from __future__ import annotations

from typing import Any

from strataflow.clock import isoformat
from strataflow.services.clusters.definition import labeling_errors
from strataflow.services.clusters.output_collection import output_collection_ids
from strataflow.store.tables import Cluster, ClusterRun


def group_label(run: ClusterRun, group: dict[str, Any]) -> str:
    """An edited label wins over the one the run computed."""
    return str((run.label_overrides or {}).get(group["cluster_id"]) or group.get("label") or group["cluster_id"])


def cluster_view(cluster: Cluster, last: ClusterRun | None, current: ClusterRun | None) -> dict[str, Any]:
    config = cluster.config
    labeling = config.get("llm_labeling")
    return {
        "cluster_id": cluster.cluster_id,
        "cluster_name": cluster.cluster_name,
        "description": cluster.description,
        "namespace_id": cluster.namespace_id,
        "input_collections": list(cluster.collection_ids),
        "source_cluster_ids": list(config.get("source_cluster_ids") or []) or None,
        "filters": cluster.filters,
        "cluster_type": cluster.cluster_type,
        "feature_uris": list(config.get("feature_uris") or []) or None,
        "multi_feature_strategy": config.get("multi_feature_strategy"),
        "learned_weights": (current.metrics or {}).get("learned_weights") if current else None,
        "learning_quality_score": ((current.metrics or {}).get("weight_learning") or {}).get("best_score")
        if current
        else None,
        "effective_feature_method": config.get("effective_feature_method"),
        "face_cluster_merge": config.get("face_cluster_merge"),
        "sample_size": config.get("sample_size"),
        "vis_n_components": config.get("vis_n_components"),
        "layout_stability": config.get("layout_stability"),
        "clustered_attributes": config.get("attributes"),
        "hierarchical_grouping": config.get("hierarchical_grouping"),
        "preprocessing_steps": config.get("preprocessing_steps") or None,
        "hierarchical_vector": bool(config.get("hierarchical")) if cluster.cluster_type == "vector" else None,
        "max_hierarchy_depth": config.get("max_hierarchy_depth") if config.get("hierarchical") else None,
        "hierarchy_detected": bool(
            current and any(not n.get("leaf") for n in (current.metrics or {}).get("hierarchy") or [])
        ),
        "hierarchy_relationships": [
            {"parent_cluster_id": n["parent_cluster_id"], "child_cluster_id": n["cluster_id"], "level": n["level"]}
            for n in ((current.metrics or {}).get("hierarchy") or [] if current else [])
            if n.get("parent_cluster_id")
        ]
        or None,
        "aggregation_method": config.get("aggregation_method"),
        "output_collection_ids": (
            list(cluster.collection_ids) if config.get("enrich_source") else (output_collection_ids(config) or None)
        ),
        "algorithm": config.get("algorithm"),
        "algorithm_params": config.get("algorithm_params"),
        "enrich_source": bool(config.get("enrich_source")),
        "source_enrichment_config": {"field_mappings": config.get("field_mappings")},
        "llm_labeling": {"enabled": bool(labeling.get("enabled"))} if labeling else None,
        "num_clusters": current.num_clusters if current else None,
        "num_documents_clustered": current.num_points if current else None,
        "execution_time_seconds": (current.timings or {}).get("total_s") if current else None,
        "quality_metrics": dict(current.metrics) if current else None,
        "status": last.status if last else "DRAFT",
        "error": last.error if last and last.status == "FAILED" else None,
        "last_execution_task_id": cluster.last_task_id,
        "last_run_id": cluster.last_run_id,
        "created_at": isoformat(cluster.created_at),
        "updated_at": isoformat(cluster.updated_at),
        "last_executed_at": isoformat(cluster.last_executed_at),
        "completed_at": isoformat(current.completed_at) if current else None,
        "llm_labeling_errors": labeling_errors(config),
        "metadata": dict(cluster.metadata_ or {}),
    }


def centroid_view(run: ClusterRun, group: dict[str, Any], include_vectors: bool) -> dict[str, Any]:
    return {
        "cluster_id": group["cluster_id"],
        "num_members": int(group["num_members"]),
        "label": group_label(run, group),
        "summary": None,
        "keywords": list(group.get("keywords") or []),
        "mean_cosine_similarity": group.get("mean_cosine_similarity"),
        "min_cosine_similarity": group.get("min_cosine_similarity"),
        "centroid_vector": list(group["centroid"]) if include_vectors and group.get("centroid") else None,
        "representative_ids": [{"document_id": d, "collection_id": c} for d, c in group.get("representatives", [])[:5]]
        or None,
    }


def run_view(run: ClusterRun, include_vectors: bool = False) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "cluster_id": run.cluster_id,
        "status": run.status.lower(),  # the contract's run statuses are lower case (pending ... canceled)
        "mode": run.mode,
        "algorithm": run.algorithm,
        "task_id": run.task_id,
        "num_clusters": run.num_clusters,
        "num_points": run.num_points,
        "metrics": dict(run.metrics or {}) or None,
        "centroids": [centroid_view(run, g, include_vectors) for g in run.groups] or None,
        "created_at": isoformat(run.created_at),
        "started_at": isoformat(run.started_at),
        "completed_at": isoformat(run.completed_at),
        "timings": dict(run.timings or {}),
        "error_message": run.error,
        "llm_labeling_errors": labeling_errors(run.settings),
        "source_documents": run.source_documents,
        "vectors_retrieved": int((run.timings or {}).get("vectors_read") or 0) or None,
        "vectors_clustered": run.num_points if run.status == "COMPLETED" else None,
        "label_overrides": dict(run.label_overrides or {}),
        "run_name": run.run_name,
        "enriched_source": run.enriched,
        "source_execution_ids": list(run.settings.get("source_execution_ids") or []) or None,
        # Always an object (empty unless composite): the SDK reads this key with .items() when present.
        "composite_mapping": {
            g["cluster_id"]: [{k: v for k, v in s.items() if k != "label"} for s in g["composite_sources"]]
            for g in run.groups
            if g.get("composite_sources") is not None
        },
        "layout_stability_applied": _layout(run).get("applied"),
        "layout_stability_reason": _layout(run).get("reason"),
    }


def _layout(run: ClusterRun) -> dict[str, Any]:
    """What the run did to keep its picture stable (engine/clusters/layout.py); runs without a
    projection of documents (attribute, composite) or not finished yet say nothing."""
    report = (run.metrics or {}).get("layout_stability")
    return dict(report) if isinstance(report, dict) else {}


def groups_view(cluster: Cluster, run: ClusterRun) -> dict[str, Any]:
    groups = [
        {
            "cluster_id": g["cluster_id"],
            "label": group_label(run, g),
            "summary": None,
            "keywords": list(g.get("keywords") or []),
            "member_count": int(g["num_members"]),
        }
        for g in run.groups
    ]
    return {
        "cluster_id": cluster.cluster_id,
        "run_id": run.run_id,
        "total_groups": len(groups),
        "total_documents": run.num_points,
        "member_counts_stale": False,
        "groups": groups,
        "noise_points": int((run.metrics or {}).get("noise_points", 0)),
        "llm_labeling_errors": labeling_errors(run.settings),
    }
