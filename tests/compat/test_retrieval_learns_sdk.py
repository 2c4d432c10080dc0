"""Retrieval that learns, through the official SDK against a live server: executions kept (listed with
their stage statistics, profiled, polled), explain runs nothing, batch and clone, the stage catalogue
without a key, typeahead, clear errors for unknown stages and missing models, interactions that make
a dataset whose evaluation matches a hand computation, and scoring of a client's predictions."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import mixpeek
import pytest
from mixpeek import (
    AdhocRetrieversApi,
    BucketObjectsApi,
    BucketsApi,
    CollectionDocumentsApi,
    CollectionsApi,
    NamespacesApi,
    RetrieverEvaluationsApi,
    RetrieverInteractionsApi,
    RetrieversApi,
    RetrieverStagesApi,
)
from mixpeek.exceptions import BadRequestException, NotFoundException
from mixpeek.models import (
    AdhocExecuteRequest,
    BatchQueryItem,
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    BulkInteractionsRequest,
    CloneRetrieverRequest,
    CreateBlobRequest,
    CreateCollectionRequest,
    CreateDatasetRequest,
    CreateNamespaceRequest,
    CreateObjectRequest,
    CreateRetrieverRequest,
    Data,
    EvaluationConfig,
    ExecuteBatchRequest,
    ExecuteRetrieverRequest,
    ExplainRetrieverRequest,
    GenerateFromInteractionsRequest,
    GroundTruthQuery,
    InteractionType,
    ListExecutionsRequest,
    ReadConsistencyOption,
    RetrieverInputSchemaFieldInput,
    RetrieverInputSchemaFieldType,
    ScorePredictionsRequest,
    SearchInteraction,
    StageConfigInput,
    StartEvaluationRequest,
)

from strataflow.config import Settings
from strataflow.runtime import Runtime, open_runtime
from tests.collection_flows import run
from tests.compat.conftest import API_KEY, LiveServer, use_namespace

pytestmark = pytest.mark.compat
FEATURE = "mixpeek://text_extractor@v1/all_minilm_l6_v2"
NOTES = [
    "The harbour lighthouse guides ships at night.",
    "Fresh bread needs flour, water and yeast.",
    "Comets leave long tails of dust near the sun.",
]
QUERY = "a tail of ice and dust in space"
SEARCH = StageConfigInput(
    stage_name="search",
    config={
        "stage_id": "feature_search",
        "parameters": {
            "searches": [{"feature_uri": FEATURE, "query": "{{INPUT.query}}", "top_k": 50}],
            "final_top_k": 3,
        },
    },
)
ORDER = StageConfigInput(stage_name="order", config={"stage_id": "sort_relevance", "parameters": {}})
SCHEMA = {"query": RetrieverInputSchemaFieldInput(type=RetrieverInputSchemaFieldType.TEXT, required=True)}


@pytest.fixture(scope="module")
def setup(live_server: LiveServer) -> Iterator[tuple[mixpeek.ApiClient, str, str]]:
    """One namespace with a three-note collection and a saved retriever over it."""
    runtime: Runtime = open_runtime(Settings(data_dir=live_server.data_dir, api_key=API_KEY))
    config = mixpeek.Configuration(host=live_server.url, access_token=API_KEY)
    with mixpeek.ApiClient(config) as sdk:
        ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="sdk_learning"))
        use_namespace(sdk, ns.namespace_id)
        bucket = BucketsApi(sdk).create_bucket(
            BucketCreateRequest(
                bucket_name="notes",
                bucket_schema=BucketSchemaInput(
                    properties={"content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT)}
                ),
            )
        )
        objects = [
            BucketObjectsApi(sdk)
            .create_object_buckets(
                bucket.bucket_id,
                CreateObjectRequest(
                    blobs=[CreateBlobRequest(var_property="content", type=BucketSchemaFieldType.TEXT, data=Data(t))]
                ),
            )
            .object_id
            for t in NOTES
        ]
        collection = CollectionsApi(sdk).create_collection(
            CreateCollectionRequest.from_dict(
                {
                    "collection_name": "notes_text",
                    "source": {"type": "bucket", "bucket_ids": [bucket.bucket_id]},
                    "feature_extractor": {
                        "feature_extractor_name": "text_extractor",
                        "version": "v1",
                        "input_mappings": {"text": "content"},
                        "parameters": {"extractor_type": "text_extractor"},
                    },
                }
            )
        )
        assert run(runtime, collection.collection_id, objects).documents_written == 3
        retriever = RetrieversApi(sdk).create_retriever(
            CreateRetrieverRequest(
                retriever_name="notes_learning",
                collection_identifiers=[collection.collection_id],
                stages=[SEARCH, ORDER],
                input_schema=SCHEMA,
            )
        )
        yield sdk, str(collection.collection_id), str(retriever.retriever_id)
    runtime.close()


def test_executions_are_kept_explained_batched_and_cloned(setup: tuple[mixpeek.ApiClient, str, str]) -> None:
    sdk, collection_id, retriever_id = setup
    api = RetrieversApi(sdk)
    result = api.execute_retriever(retriever_id, ExecuteRetrieverRequest(inputs={"query": QUERY}, limit=3))
    assert result.documents[0]["text"] == NOTES[2]

    listed = api.list_executions_retrievers(retriever_id, list_executions_request=ListExecutionsRequest())
    assert [e.execution_id for e in listed.results] == [result.execution_id]
    assert listed.results[0].status == "completed" and listed.results[0].total_returned == 3
    detail = api.get_execution_retrievers(retriever_id, result.execution_id)
    stages = detail.stage_statistics.stages
    assert set(stages) == {"search", "order"} and stages["search"].output_count == 3
    assert stages["order"].input_count == 3 and detail.results[0]["document_id"] == result.documents[0]["document_id"]
    profile = api.get_execution_profile_retrievers(retriever_id, result.execution_id)
    assert [s["stage_name"] for s in profile["stages"]] == ["search", "order"]
    assert api.get_execution_status_retrievers(retriever_id, result.execution_id)["status"] == "completed"

    plan = api.explain_retriever_execution_id_execute(retriever_id, ExplainRetrieverRequest(inputs={"query": QUERY}))
    assert [p.stage_name for p in plan.execution_plan] == ["search", "order"] and plan.total_estimated_stages == 2
    assert plan.execution_plan[0].estimated_input == 3
    assert plan.optimization_details["stages"]["search"]["indexes_used"][0]["kind"] == "vector"
    assert any(note.startswith("vector index") for note in plan.execution_plan[0].optimization_notes)
    after = api.list_executions_retrievers(retriever_id, list_executions_request=ListExecutionsRequest())
    assert after.pagination.total == 1  # explain ran nothing and recorded nothing

    batch = api.execute_batch_retrievers(
        retriever_id,
        ExecuteBatchRequest(queries=[BatchQueryItem(inputs={"query": "baking"}), BatchQueryItem(inputs={})]),
    )
    assert batch["succeeded"] == 1 and batch["failed"] == 1, batch
    assert batch["results"][0]["documents"][0]["text"] == NOTES[1]
    assert batch["results"][1]["error"]["type"] == "ValidationError"

    clone = api.clone_retriever(retriever_id, CloneRetrieverRequest(retriever_name="notes_learning_copy"))
    assert clone.source_retriever_id == retriever_id and [s.stage_name for s in clone.retriever.stages] == [
        "search",
        "order",
    ]

    adhoc_api = AdhocRetrieversApi(sdk)
    adhoc = adhoc_api.execute_adhoc_retriever(
        AdhocExecuteRequest(
            collection_identifiers=[collection_id], stages=[SEARCH], input_schema=SCHEMA, inputs={"query": "x"}
        )
    )
    kept = adhoc_api.list_adhoc_executions_retrievers()
    assert [e.execution_id for e in kept.results] == [adhoc["execution_id"]]
    assert adhoc_api.get_adhoc_execution_retrievers(adhoc["execution_id"]).total_stages == 1

    suggestions = api.typeahead_retrievers(q="a tail", limit=5)
    assert QUERY in suggestions.recent_searches
    assert [c.collection_id for c in api.typeahead_retrievers(q="notes").collections] == [collection_id]


def test_stage_catalogue_and_clear_refusals(live_server: LiveServer, setup: tuple[mixpeek.ApiClient, str, str]) -> None:
    sdk, collection_id, _ = setup
    with mixpeek.ApiClient(mixpeek.Configuration(host=live_server.url)) as anonymous:
        stages = {s.stage_id: s for s in RetrieverStagesApi(anonymous).list_stages_retrievers()}
    assert {"feature_search", "sort_relevance", "aggregate", "sample", "document_enrich"} <= set(stages)
    assert "score_field" in stages["sort_relevance"].parameter_schema["properties"]

    api = RetrieversApi(sdk)
    for stage_id, words in (
        ("vector_magic", "Unknown stage_id"),
        ("llm_filter", "language model"),
        ("rerank", "cross-encoder"),
    ):
        stage = StageConfigInput(stage_name="s", config={"stage_id": stage_id, "parameters": {}})
        with pytest.raises(BadRequestException) as refused:
            api.create_retriever(
                CreateRetrieverRequest(
                    retriever_name=f"r_{stage_id}", collection_identifiers=[collection_id], stages=[SEARCH, stage]
                )
            )
        assert words in refused.value.data.error.message


def test_interactions_make_a_dataset_whose_evaluation_matches_a_hand_computation(
    setup: tuple[mixpeek.ApiClient, str, str],
) -> None:
    sdk, _, retriever_id = setup
    result = RetrieversApi(sdk).execute_retriever(
        retriever_id, ExecuteRetrieverRequest(inputs={"query": QUERY}, limit=3)
    )
    ranked = [d["document_id"] for d in result.documents]
    interactions = RetrieverInteractionsApi(sdk)
    click = interactions.create_interaction_retrievers(
        SearchInteraction(
            feature_id=ranked[1],
            interaction_type=[InteractionType.CLICK],
            position=1,
            execution_id=result.execution_id,
            retriever_id=retriever_id,
            result_set_size=3,
        )
    )
    assert click.interaction_id and click.query_snapshot == {"query": QUERY}  # taken from the execution
    bulk = interactions.create_interactions_bulk_retrievers_batch(
        BulkInteractionsRequest(
            interactions=[
                SearchInteraction(
                    feature_id=ranked[1],
                    interaction_type=[InteractionType.PURCHASE],
                    position=1,
                    execution_id=result.execution_id,
                ),
                SearchInteraction(
                    feature_id=ranked[0],
                    interaction_type=[InteractionType.IMPRESSION],
                    position=0,
                    execution_id=result.execution_id,
                ),
                SearchInteraction(
                    feature_id=ranked[0],
                    interaction_type=[InteractionType.CLICK],
                    position=0,
                    execution_id="exec_missing",
                ),
            ]
        )
    )
    assert bulk.created == 2 and bulk.failed == 1 and "exec_missing" in bulk.errors[0]

    evaluations = RetrieverEvaluationsApi(sdk)
    dataset = evaluations.generate_dataset_from_interactions_retrievers_id_evaluations(
        retriever_id, GenerateFromInteractionsRequest(dataset_name="from_clicks", min_interactions=2)
    )
    assert [(q.query_input, q.relevant_documents) for q in dataset.queries] == [({"query": QUERY}, [ranked[1]])]
    started = evaluations.start_evaluation_retrievers(
        retriever_id,
        StartEvaluationRequest(dataset_name="from_clicks", evaluation_config=EvaluationConfig(k_values=[1, 2])),
    )
    deadline = time.monotonic() + 60
    record = evaluations.get_evaluation_retrievers(retriever_id, started.evaluation_id)
    while record.status.value not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)
        record = evaluations.get_evaluation_retrievers(retriever_id, started.evaluation_id)
    assert record.status.value == "completed", record.error_message
    # The relevant note is ranked second: by hand, nothing at k=1; at k=2 precision 1/2, recall 1,
    # F1 2/3, AP (1/2)/1, reciprocal rank 1/2, nDCG (1/log2 3)/1.
    assert record.metrics_by_k["1"] == {"precision": 0, "recall": 0, "f1": 0, "f2": 0, "map": 0, "ndcg": 0, "mrr": 0}
    assert record.metrics_by_k["2"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "f2": 5 / 6, "map": 0.5, "ndcg": 0.63093, "mrr": 0.5}, abs=1e-5
    )
    assert record.evaluated_queries == 1 and record.overall_metrics["ndcg@2"] == pytest.approx(0.63093, abs=1e-5)

    created = evaluations.create_dataset_retrievers_evaluations(
        CreateDatasetRequest(
            dataset_name="by_hand",
            queries=[GroundTruthQuery(query_id="a", query_input={"query": "baking"}, relevant_documents=[ranked[0]])],
        )
    )
    assert created.query_count == 1
    names = {d.dataset_name for d in evaluations.list_datasets_retrievers_evaluations().datasets}
    assert names == {"from_clicks", "by_hand"}

    scored = evaluations.score_predictions_evaluations(
        ScorePredictionsRequest(predicted=["a", "b", "c", "d"], ground_truth=["b", "d", "e"])
    )
    assert scored.aggregate == pytest.approx({"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7}, abs=1e-5)


def test_offline_stages_sort_sample_join_and_aggregate(setup: tuple[mixpeek.ApiClient, str, str]) -> None:
    sdk, collection_id, _ = setup
    adhoc = AdhocRetrieversApi(sdk)

    def execute(*stages: StageConfigInput) -> dict[str, object]:
        request = AdhocExecuteRequest(
            collection_identifiers=[collection_id],
            stages=[SEARCH, *stages],
            input_schema=SCHEMA,
            inputs={"query": QUERY},
        )
        return dict(adhoc.execute_adhoc_retriever(request))

    def stage(name: str, stage_id: str, parameters: dict[str, object]) -> StageConfigInput:
        return StageConfigInput(stage_name=name, config={"stage_id": stage_id, "parameters": parameters})

    ranked = execute()["documents"]
    assert isinstance(ranked, list) and len(ranked) == 3
    scores = [d["score"] for d in ranked]
    out = execute(
        stage("worst_first", "sort_relevance", {"direction": "asc"}),
        stage("two", "sample", {"count": 2, "seed": 1, "preserve_top_k": 1}),
        stage(
            "join",
            "document_enrich",
            {
                "target_collection_id": collection_id,
                "source_field": "document_id",
                "target_field": "document_id",
                "fields_to_merge": ["text"],
                "output_field": "joined",
            },
        ),
    )
    documents = out["documents"]
    assert isinstance(documents, list) and len(documents) == 2
    assert documents[0]["document_id"] == ranked[-1]["document_id"]  # the lowest score, kept by preserve_top_k
    assert documents[0]["score"] <= documents[1]["score"]
    assert all(d["joined"] == {"text": d["text"]} for d in documents)

    counted = execute(
        stage(
            "stats",
            "aggregate",
            {
                "aggregations": [
                    {"function": "count", "alias": "n"},
                    {"function": "avg", "field": "score", "alias": "mean"},
                ]
            },
        )
    )
    assert counted["documents"] == []
    assert counted["aggregations"] == {"stats": [{"n": 3, "mean": pytest.approx(sum(scores) / 3)}]}

    labeled = execute(stage("groups", "cluster", {"algorithm": "kmeans", "n_clusters": 2, "output_mode": "labeled"}))
    labels = [d["cluster_id"] for d in labeled["documents"]]  # type: ignore[index, union-attr]
    assert len(labels) == 3 and set(labels) == {"cluster_0", "cluster_1"}
    grouped = execute(stage("groups", "cluster", {"algorithm": "kmeans", "n_clusters": 2}))["documents"]
    assert isinstance(grouped, list) and sorted(d["member_count"] for d in grouped) == [1, 2]
    assert sum(len(d["members"]) for d in grouped) == 3 and all(len(d["centroid"]) == 384 for d in grouped)


def test_executions_interactions_and_datasets_stay_in_their_namespace(
    setup: tuple[mixpeek.ApiClient, str, str],
) -> None:
    sdk, _, retriever_id = setup
    home = sdk.configuration.api_key["NamespaceHeader"]
    adhoc = AdhocRetrieversApi(sdk)
    seen = adhoc.list_adhoc_executions_retrievers().results
    interactions = RetrieverInteractionsApi(sdk).list_interactions_retrievers().results
    assert seen and interactions
    other = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="sdk_learning_other"))
    use_namespace(sdk, other.namespace_id)
    try:
        assert adhoc.list_adhoc_executions_retrievers().results == []
        with pytest.raises(NotFoundException):
            adhoc.get_adhoc_execution_retrievers(seen[0].execution_id)
        with pytest.raises(NotFoundException):
            RetrieverInteractionsApi(sdk).get_interaction_retrievers(interactions[0].interaction_id)
        assert RetrieverEvaluationsApi(sdk).list_datasets_retrievers_evaluations().datasets == []
        with pytest.raises(NotFoundException):
            RetrieversApi(sdk).list_executions_retrievers(retriever_id)
    finally:
        use_namespace(sdk, home)


def test_explain_on_execute_profiles_the_run_it_answers(setup: tuple[mixpeek.ApiClient, str, str]) -> None:
    sdk, collection_id, retriever_id = setup
    api = RetrieversApi(sdk)
    plain = api.execute_retriever(retriever_id, ExecuteRetrieverRequest(inputs={"query": QUERY}, limit=3))
    assert plain.explain_plan is None

    for explained in (
        api.execute_retriever(retriever_id, ExecuteRetrieverRequest(inputs={"query": QUERY}, limit=3), explain=True),
        api.execute_retriever(retriever_id, ExecuteRetrieverRequest(inputs={"query": QUERY}, limit=3, explain=True)),
    ):
        plan = explained.explain_plan
        assert plan is not None and plan["execution_id"] == explained.execution_id
        statistics = explained.stage_statistics.stages
        assert [s["stage_name"] for s in plan["stages"]] == ["search", "order"]
        for stage in plan["stages"]:
            assert stage["ran"] and stage["input_count"] == statistics[stage["stage_name"]].input_count
            assert stage["output_count"] == statistics[stage["stage_name"]].output_count
        [search, order] = plan["stages"]
        assert search["output_count"] == 3 and plan["documents_returned"] == 3
        [index] = search["indexes_used"]
        assert index["kind"] == "vector" and index["collection_id"] == collection_id and index["feature_uri"] == FEATURE
        assert order["indexes_used"] == [] and plan["bottleneck_stage"] in {"search", "order"}
        assert explained.documents[0]["text"] == NOTES[2]  # explaining changes nothing in the answer

    # The SDK's ad-hoc execute has no explain argument: the server takes it in the query string.
    config = sdk.configuration
    adhoc = httpx.post(
        f"{config.host}/v1/retrievers/execute?explain=true",
        headers={"Authorization": f"Bearer {API_KEY}", "X-Namespace": config.api_key["NamespaceHeader"]},
        json={
            "collection_identifiers": [collection_id],
            "stages": [SEARCH.to_dict()],
            "input_schema": {"query": {"type": "text", "required": True}},
            "inputs": {"query": QUERY},
            "filters": {"field": "text", "operator": "contains", "value": "dust"},
        },
    ).json()
    [search] = adhoc["explain_plan"]["stages"]
    assert search["output_count"] == 1 and len(adhoc["documents"]) == 1
    assert search["filters_pushed_down"][0]["collection_id"] == collection_id


def test_execute_writes_its_answer_into_a_collection_and_expands_references(
    setup: tuple[mixpeek.ApiClient, str, str],
) -> None:
    sdk, collection_id, retriever_id = setup
    api = RetrieversApi(sdk)
    source = CollectionsApi(sdk).get_collection(collection_id)
    favourites = CollectionsApi(sdk).create_collection(
        CreateCollectionRequest.from_dict(
            {
                "collection_name": "favourites",
                "source": source.source.to_dict(),
                "feature_extractor": source.feature_extractor.to_dict(),
            }
        )
    )
    request = ExecuteRetrieverRequest(inputs={"query": QUERY}, limit=2, target_collection_id="favourites")
    first = api.execute_retriever(retriever_id, request)
    assert first.written_to is not None and first.written_to["documents_written"] == 2
    assert first.written_to["collection_id"] == favourites.collection_id
    again = api.execute_retriever(retriever_id, request)  # the same retriever again: the same documents, updated
    assert again.written_to["document_ids"] == first.written_to["document_ids"]

    docs = CollectionDocumentsApi(sdk)
    written = docs.list_documents("favourites", return_vectors=True).results
    assert sorted(d.document_id for d in written) == sorted(first.written_to["document_ids"])
    by_source = {d.to_dict()["_internal"]["lineage"]["source_document_id"]: d.to_dict() for d in written}
    assert set(by_source) == {d["document_id"] for d in first.documents}
    answer = {d["document_id"]: d for d in first.documents}
    vector = source.to_dict()["vector_indexes"][0]["index"]["name"]
    for source_id, doc in by_source.items():
        assert doc["text"] == answer[source_id]["text"] and doc["score"] == pytest.approx(answer[source_id]["score"])
        assert doc["_internal"]["lineage"]["retriever_id"] == retriever_id
        assert doc["_internal"]["lineage"]["source_collection_id"] == collection_id
        assert len(doc[vector]) == len(
            docs.get_document(collection_id, source_id, return_vectors=True).to_dict()[vector]
        )

    expanded = api.execute_retriever(
        retriever_id, ExecuteRetrieverRequest(inputs={"query": QUERY}, limit=3, expand=["root_object"])
    )
    for doc in expanded.documents:
        assert doc["_expanded"]["root_object"]["object_id"] == doc["_internal"]["lineage"]["root_object_id"]
    assert expanded.consistency_mode == "strong" and expanded.written_to is None
    # Every read here is strong; the SDK's consistency options are taken, and answered honestly.
    eventual = api.execute_retriever(
        retriever_id,
        ExecuteRetrieverRequest(
            inputs={"query": QUERY},
            limit=3,
            consistency=ReadConsistencyOption(mode="eventual", max_staleness_ms=500),
            write_token="wt_anything",
            skip_cache=True,
        ),
    )
    assert eventual.consistency_mode == "strong" and eventual.cache_hit is False
    assert [d["document_id"] for d in eventual.documents] == [d["document_id"] for d in expanded.documents]

    with pytest.raises(NotFoundException):
        api.execute_retriever(
            retriever_id, ExecuteRetrieverRequest(inputs={"query": QUERY}, target_collection_id="nope")
        )
    streamed = ExecuteRetrieverRequest(inputs={"query": QUERY}, stream=True, target_collection_id="favourites")
    with pytest.raises(BadRequestException):
        api.execute_retriever(retriever_id, streamed)
    assert len(docs.list_documents("favourites").results) == 2  # refused runs wrote nothing
