"""Clusters through the official SDK: ClustersApi and ClusterExecutionsApi against a live server,
whose collection's documents this process writes (as a worker would)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import mixpeek
import pytest
from mixpeek import (
    BucketsApi,
    ClusterExecutionsApi,
    ClustersApi,
    ClusterTriggersApi,
    CollectionsApi,
    NamespacesApi,
    TasksApi,
    TaxonomiesApi,
)
from mixpeek.exceptions import BadRequestException, NotFoundException
from mixpeek.models import (
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    ClusterRunSource,
    CreateClusterRequest,
    CreateCollectionRequest,
    CreateNamespaceRequest,
    CreateNodeFromDocumentsRequest,
    CreateTaxonomyFromDocumentsRequest,
    DocumentRef,
    ExecuteClusterByIdRequest,
    ListClustersRequest,
    PatchClusterRequest,
    PatchExecutionLabelsRequest,
    PatchExecutionRunNameRequest,
    SharedClustersTriggersModelsCreateTriggerRequest,
    SharedClustersTriggersModelsListTriggersRequest,
    TriggerHistoryRequest,
)

from strataflow.config import Settings
from strataflow.runtime import Runtime, open_runtime
from tests.cluster_points import PER_TOPIC, TOPICS, write_points
from tests.compat.conftest import API_KEY, LiveServer, use_namespace

pytestmark = pytest.mark.compat
FEATURE = "mixpeek://text_extractor@v1/all_minilm_l6_v2"


@pytest.fixture
def worker(live_server: LiveServer) -> Iterator[Runtime]:
    runtime = open_runtime(Settings(data_dir=live_server.data_dir, api_key=API_KEY))
    yield runtime
    runtime.close()


def _collection(sdk: mixpeek.ApiClient, worker: Runtime, namespace: str = "sdk_clusters") -> str:
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name=namespace))
    use_namespace(sdk, ns.namespace_id)
    bucket = BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name="notes",
            bucket_schema=BucketSchemaInput(
                properties={"content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT)}
            ),
        )
    )
    collection = CollectionsApi(sdk).create_collection(
        CreateCollectionRequest.from_dict(
            {
                "collection_name": "points",
                "source": {"type": "bucket", "bucket_ids": [bucket.bucket_id]},
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": "content"},
                    "parameters": {"extractor_type": "text_extractor", "split_by": "none"},
                },
            }
        )
    )
    assert collection is not None
    write_points(worker, collection.collection_id)
    return str(collection.collection_id)


def _wait(sdk: mixpeek.ApiClient, task_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = TasksApi(sdk).get_task(task_id).status.value
        if status in ("COMPLETED", "FAILED", "CANCELED"):
            return str(status)
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish")


def test_clusters_through_the_sdk(sdk: mixpeek.ApiClient, worker: Runtime) -> None:
    collection_id = _collection(sdk, worker)
    clusters, executions = ClustersApi(sdk), ClusterExecutionsApi(sdk)
    created = clusters.create_cluster(
        CreateClusterRequest.from_dict(
            {
                "collection_ids": [collection_id],
                "cluster_name": "topics",
                "cluster_type": "vector",
                "vector_config": {
                    "feature_uris": [FEATURE],
                    "clustering_method": "kmeans",
                    "kmeans_parameters": {"n_clusters": 3},
                },
                "enrich_source_collection": True,
                "llm_labeling": {"enabled": True},
            }
        )
    )
    cid = created.cluster_id
    assert cid and created.status.value == "DRAFT" and created.algorithm == "kmeans"
    assert created.llm_labeling_errors and "no language model" in created.llm_labeling_errors[0]
    assert clusters.get_cluster("topics").cluster_id == cid
    assert [
        c.cluster_id for c in clusters.list_clusters(list_clusters_request=ListClustersRequest(search="topic")).results
    ] == [cid]
    assert clusters.list_clusters_get().total_count == 1
    assert clusters.patch_cluster(cid, PatchClusterRequest(description="three")).description == "three"
    with pytest.raises(BadRequestException):
        clusters.create_cluster(
            CreateClusterRequest.from_dict(
                {
                    "collection_ids": [collection_id],
                    "cluster_name": "too_big",
                    "vector_config": {
                        "feature_uris": [FEATURE],
                        "clustering_method": "spectral",
                        "sample_size": 900_000,
                    },
                }
            )
        )

    task = clusters.execute_clustering_clusters(cid)
    assert task.task_type.value == "engine_cluster_build"
    assert _wait(sdk, task.task_id) == "COMPLETED"
    latest = executions.get_cluster_execution(cid)
    assert latest.status == "completed" and latest.num_clusters == 3 and latest.num_points == 3 * PER_TOPIC
    assert latest.metrics is not None and latest.metrics.silhouette_score > 0.5
    assert latest.centroids and latest.centroids[0].centroid_vector is None
    run_id = latest.run_id
    listed = executions.list_cluster_executions(cid)
    assert listed.total_count == 1 and listed.results[0].run_id == run_id
    assert executions.get_cluster_execution_by_run(cid, run_id).run_id == run_id

    groups = clusters.get_cluster_groups(cid)
    assert groups.total_groups == 3 and sorted(g.member_count for g in groups.groups) == [PER_TOPIC] * 3
    words = {w for text in TOPICS.values() for w in text.split()}
    assert all(set(g.keywords or []) & words for g in groups.groups)
    first = groups.groups[0].cluster_id
    labels = executions.patch_execution_labels_clusters_id_run(
        cid, run_id, PatchExecutionLabelsRequest(labels={first: "Renamed"})
    )
    assert labels.label_overrides == {first: "Renamed"}
    named = executions.patch_execution_run_name_clusters(cid, run_id, PatchExecutionRunNameRequest(run_name="v1"))
    assert named.run_name == "v1"

    picture = clusters.get_cluster_visualization(cid, max_points=10, compact=True)
    assert len(picture["members"]["x"]) == 10 and len(picture["centroids"]) == 3
    export = executions.export_cluster_execution_id_run(cid, run_id, format="parquet")
    assert export["row_count"] == 3 * PER_TOPIC and export["download_url"]

    triggers = ClusterTriggersApi(sdk)
    trigger = triggers.create_trigger_clusters(
        SharedClustersTriggersModelsCreateTriggerRequest.from_dict(
            {"cluster_id": cid, "trigger_type": "cron", "schedule_config": {"cron_expression": "0 3 * * *"}}
        )
    )
    assert trigger.trigger_id and trigger.status.value == "active" and trigger.next_scheduled_at is not None
    assert triggers.get_trigger_clusters(trigger.trigger_id).cluster_id == cid
    assert triggers.pause_trigger_clusters(trigger.trigger_id).status.value == "paused"
    listed_triggers = triggers.list_triggers_clusters(SharedClustersTriggersModelsListTriggersRequest(cluster_id=cid))
    assert listed_triggers.total == 1
    assert triggers.get_trigger_history_clusters(trigger.trigger_id, TriggerHistoryRequest()).total == 0
    by_type = SharedClustersTriggersModelsListTriggersRequest(cluster_id=cid, sort_by="trigger_type", direction="asc")
    assert [t.trigger_id for t in triggers.list_triggers_clusters(by_type).results] == [trigger.trigger_id]
    with pytest.raises(BadRequestException):  # sort_by is read, not dropped
        triggers.list_triggers_clusters(SharedClustersTriggersModelsListTriggersRequest(sort_by="secret"))
    failed = TriggerHistoryRequest(status_filter="failed")
    assert triggers.get_trigger_history_clusters(trigger.trigger_id, failed).executions == []
    triggers.delete_trigger_clusters(trigger.trigger_id)

    clusters.delete_cluster(cid)
    with pytest.raises(NotFoundException):
        clusters.get_cluster(cid)


def test_output_collection_modes_and_taxonomy_from_a_run_through_the_sdk(
    sdk: mixpeek.ApiClient, worker: Runtime
) -> None:
    collection_id = _collection(sdk, worker, "sdk_cluster_outputs")
    clusters, executions = ClustersApi(sdk), ClusterExecutionsApi(sdk)
    vector = {"feature_uris": [FEATURE], "clustering_method": "kmeans", "kmeans_parameters": {"n_clusters": 3}}
    created = clusters.create_cluster(
        CreateClusterRequest.from_dict(
            {"collection_ids": [collection_id], "cluster_name": "topics", "vector_config": vector}
        )
    )
    cid = created.cluster_id
    assert created.output_collection_names == ["topics_output"] and created.output_collection_ids
    full = clusters.execute_clustering_clusters(cid)
    assert _wait(sdk, full.task_id) == "COMPLETED"
    run_id = executions.get_cluster_execution(cid).run_id
    assign = clusters.execute_clustering_clusters(cid, ExecuteClusterByIdRequest(mode="assign"))
    assert _wait(sdk, assign.task_id) == "COMPLETED"
    assigned = executions.get_cluster_execution(cid)
    assert assigned.mode == "assign" and assigned.num_points == 3 * PER_TOPIC

    meta = clusters.create_cluster(
        CreateClusterRequest.from_dict({"cluster_name": "meta", "source_cluster_ids": [cid], "vector_config": vector})
    )
    assert meta.source_cluster_ids == [cid]
    composite = clusters.execute_clustering_clusters(
        meta.cluster_id,
        ExecuteClusterByIdRequest(mode="composite", source_execution_ids=[run_id, assigned.run_id]),
    )
    assert _wait(sdk, composite.task_id) == "COMPLETED"
    grouped = executions.get_cluster_execution(meta.cluster_id)
    assert grouped.mode == "composite" and grouped.composite_mapping is not None
    assert sorted(len(v) for v in grouped.composite_mapping.values()) == [2, 2, 2]

    taxonomies = TaxonomiesApi(sdk)
    promoted = taxonomies.create_taxonomy_from_documents_taxonomies(
        CreateTaxonomyFromDocumentsRequest(
            taxonomy_name="topics", cluster_run=ClusterRunSource(cluster_id=cid, run_id=run_id)
        )
    )
    assert promoted.taxonomy_created and promoted.nodes is not None and len(promoted.nodes) == 3
    node = taxonomies.create_taxonomy_node_from_documents_taxonomies(
        promoted.taxonomy_id,
        CreateNodeFromDocumentsRequest(
            node_label="Fruit",
            documents=[DocumentRef(collection_id=collection_id, document_id=f"doc_fruit_{i:03d}") for i in range(3)],
        ),
    )
    assert node.documents_used == 3 and node.node_collection_id == promoted.node_collection_id
    clusters.delete_cluster(meta.cluster_id)
    clusters.delete_cluster(cid)
    with pytest.raises(NotFoundException):
        CollectionsApi(sdk).get_collection(created.output_collection_ids[0])
