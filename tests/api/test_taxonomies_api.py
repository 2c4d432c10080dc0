"""Taxonomies over the API on SQLite and PostgreSQL: CRUD, versions, clone, the join (execute),
materialised enrichment in a batch, apply-taxonomy as a task, and bad input.

Reference nodes and documents are written by the real collection runner with the real MiniLM
model; the join runs the real retriever over the nodes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow import transitions
from strataflow.clock import utcnow
from strataflow.engine.jobs import JobContext
from strataflow.errors import ConflictError
from strataflow.runtime import Runtime
from strataflow.services.taxonomies.apply import apply_job
from strataflow.services.taxonomies.crud import delete_taxonomy
from strataflow.services.taxonomies.enrichment import clear
from strataflow.services.taxonomies.materialize import collection_enricher
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.services.tenancy.tasks import create_task
from strataflow.statuses import Status, TaskType
from strataflow.store.tables import Collection, Namespace, Task
from tests.collection_flows import add_object, make_bucket, run, text_collection
from tests.helpers import assert_error, wait_task

# Three reference nodes, described in other words than the documents below use.
NODES = [
    ("marine life", "sea", "Creatures of the ocean: fish, whales, coral reefs and other sea animals."),
    ("baking", "kitchen", "Making bread, cakes and pastries in an oven with flour, butter and yeast."),
    ("astronomy", "sky", "Planets, stars, rockets, astronauts and the exploration of outer space."),
]
DOCUMENTS = [
    ("Salmon swim upstream to spawn in the rivers where they hatched.", "marine life"),
    ("Dolphins leap beside the boat while the pod hunts sardines.", "marine life"),
    ("A shark's fin cut through the waves near the reef.", "marine life"),
    ("Knead the dough, let it rise overnight, then bake until the crust is golden.", "baking"),
    ("A sourdough starter is a culture of wild yeast and bacteria.", "baking"),
    ("Whisk eggs and sugar until pale before folding in the flour.", "baking"),
    ("The Apollo 11 mission landed the first humans on the Moon in 1969.", "astronomy"),
    ("The telescope revealed a faint galaxy far beyond the nebula.", "astronomy"),
    ("The rover drilled into Martian rock searching for signs of water.", "astronomy"),
]
QUERY_SCHEMA = {"query": {"type": "text", "required": True}}


def _feature_uri(client: TestClient, collection_id: str) -> str:
    features = client.get(f"/v1/collections/{collection_id}/features").json()["features"]
    return str(features[0]["feature_uri"])


@pytest.fixture
def reference(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """The node collection, its retriever, and an empty documents collection to enrich."""
    make_bucket(client, "ref")
    make_bucket(client, "docs")
    nodes = text_collection(
        client,
        "nodes",
        {"type": "bucket", "bucket_ids": ["ref"]},
        split_by="none",
        model="minilm",
        passthrough=("title", "lang"),
    )
    ids = [add_object(client, text, bucket="ref", title=label, lang=tag) for label, tag, text in NODES]
    assert run(runtime, nodes["collection_id"], ids).documents_written == 3
    uri = _feature_uri(client, nodes["collection_id"])
    retriever = client.post(
        "/v1/retrievers",
        json={
            "retriever_name": "node_search",
            "collection_identifiers": ["nodes"],
            "input_schema": QUERY_SCHEMA,
            "stages": [
                {
                    "stage_name": "search",
                    "config": {
                        "stage_id": "feature_search",
                        "parameters": {
                            "searches": [{"feature_uri": uri, "query": "{{INPUT.query}}", "top_k": 10}],
                            "final_top_k": 10,
                        },
                    },
                }
            ],
        },
    )
    assert retriever.status_code == 200, retriever.text
    return {"nodes": nodes, "retriever_id": retriever.json()["retriever_id"], "feature_uri": uri}


def flat_config(reference: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "taxonomy_type": "flat",
        "retriever_id": reference["retriever_id"],
        "input_mappings": [{"input_key": "query", "source_type": "payload", "path": "text"}],
        "source_collection": {
            "collection_id": reference["nodes"]["collection_id"],
            "enrichment_fields": [
                {"field_path": "title", "target_field": "category", "merge_mode": "replace"},
                {"field_path": "lang", "target_field": "topics", "merge_mode": "append"},
            ],
        },
        **extra,
    }


def create(client: TestClient, name: str, config: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/taxonomies", json={"taxonomy_name": name, "config": config})
    assert response.status_code == 200, response.text
    return dict(response.json())


def documents(client: TestClient, collection_id: str) -> list[dict[str, Any]]:
    body = client.post(f"/v1/collections/{collection_id}/documents/list?limit=1000", json={}).json()
    return list(body["results"])


def test_crud_versions_clone(client: TestClient, reference: dict[str, Any]) -> None:
    taxonomy = create(client, "topics", flat_config(reference))
    tid = taxonomy["taxonomy_id"]
    assert tid.startswith("tax_") and taxonomy["version"] == 1 and taxonomy["config"]["taxonomy_type"] == "flat"
    assert client.get(f"/v1/taxonomies/{tid}").json()["taxonomy_name"] == "topics"
    assert client.get("/v1/taxonomies/topics").json()["taxonomy_id"] == tid
    listed = client.post("/v1/taxonomies/list", json={"search": "TOP"}).json()
    assert [t["taxonomy_id"] for t in listed["results"]] == [tid] and listed["total_count"] == 1
    assert listed["stats"]["flat_taxonomies"] == 1
    assert client.get("/v1/taxonomies").json()["total_count"] == 1
    assert_error(client.post("/v1/taxonomies", json={"taxonomy_name": "topics", "config": flat_config(reference)}), 409)

    patched = client.patch(f"/v1/taxonomies/{tid}", json={"description": "what it is about", "metadata": {"a": 1}})
    assert patched.json()["description"] == "what it is about" and patched.json()["metadata"] == {"a": 1}

    version = client.post(f"/v1/taxonomies/{tid}/versions", json={"config": flat_config(reference, top_k=2)})
    assert version.status_code == 200, version.text
    assert version.json()["version"] == 2 and version.json()["config"]["top_k"] == 2
    versions = client.get(f"/v1/taxonomies/{tid}/versions").json()["results"]
    assert [(v["version"], v["config"]["top_k"]) for v in versions] == [(2, 2), (1, 1)]

    clone = client.post(f"/v1/taxonomies/{tid}/clone", json={"taxonomy_name": "topics_copy"})
    assert clone.status_code == 200, clone.text
    assert clone.json()["source_taxonomy_id"] == tid and clone.json()["taxonomy"]["config"]["top_k"] == 2
    assert clone.json()["taxonomy"]["taxonomy_id"] != tid

    assert client.delete(f"/v1/taxonomies/{tid}").json()["taxonomy_id"] == tid
    assert_error(client.get(f"/v1/taxonomies/{tid}"), 404)
    assert client.get("/v1/taxonomies").json()["total_count"] == 1


def test_execute_is_a_dry_run_with_scores(client: TestClient, reference: dict[str, Any]) -> None:
    tid = create(client, "topics", flat_config(reference, top_k=2))["taxonomy_id"]
    body = client.post(
        f"/v1/taxonomies/{tid}/execute",
        json={
            "source_documents": [
                {"document_id": "d1", "text": "A whale sang to its calf in the deep blue water.", "topics": ["mine"]},
                {"document_id": "d2"},
            ]
        },
    ).json()
    assert body["stats"] == {"processed_docs": 2, "batches": 1, "errors": 0, "enriched": 1}
    first, second = body["results"]
    assert first["category"] == "marine life" and len(first["topics"]) == 3
    assert first["topics"][:2] == ["mine", "sea"]  # appended after the document's own values, best match first
    assert first["_internal"][f"_taxonomy_{tid}_label"] == "marine life"
    assert len(first["_internal"][f"_taxonomy_{tid}_assignments"]) == 2
    assert "category" not in second  # no text to map: not enriched
    best = body["matches"][0]
    assert best["document_id"] == "d1" and best["label"] == "marine life" and 0 < best["score"] <= 1
    assert sorted(best["enriched_fields"]) == ["category", "topics"]
    client.post(f"/v1/taxonomies/{tid}/versions", json={"config": flat_config(reference)})  # top_k 1
    whale = {"source_documents": [{"text": "A whale sang to its calf in the deep blue water."}]}
    assert len(client.post(f"/v1/taxonomies/execute/{tid}", json=whale).json()["matches"]) == 1
    assert len(client.post(f"/v1/taxonomies/execute/{tid}?version=1", json=whale).json()["matches"]) == 2
    assert_error(client.post(f"/v1/taxonomies/execute/{tid}?version=7", json=whale), 404)
    assert client.post("/v1/collections/nodes/documents/list", json={}).json()["results"][0].get("category") is None


def _submit(client: TestClient, bucket: str, object_ids: list[str]) -> None:
    batch = client.post(f"/v1/buckets/{bucket}/batches", json={"object_ids": object_ids}).json()
    task = client.post(f"/v1/buckets/{bucket}/batches/{batch['batch_id']}/submit", json={})
    assert task.status_code == 200, task.text
    status = wait_task(client, task.json()["task_id"], timeout=400)
    assert status["status"] == "COMPLETED", status


def test_materialised_in_the_batch_with_held_out_text(
    client: TestClient, reference: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    tid = create(client, "topics", flat_config(reference))["taxonomy_id"]
    target = client.post(
        "/v1/collections",
        json={
            "collection_name": "passages",
            "source": {"type": "bucket", "bucket_ids": ["docs"]},
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": "content"},
                "field_passthrough": [{"source_path": "title"}],
                "parameters": {"extractor_type": "text_extractor", "split_by": "none", "model": "minilm"},
            },
            "taxonomy_applications": [{"taxonomy_id": "topics", "execution_mode": "materialize"}],
        },
    )
    assert target.status_code == 200, target.text
    assert target.json()["taxonomy_applications"][0]["taxonomy_id"] == tid  # stored by id
    # A tier reading the enriched collection sees the enrichment (the next tier reads after the write).
    downstream = text_collection(
        client,
        "copies",
        {"type": "collection", "collection_ids": ["passages"]},
        mapping="text",
        split_by="none",
        model="minilm",
        passthrough=("category",),
    )
    ids = {
        add_object(client, text, bucket="docs", title=f"doc {i}"): label for i, (text, label) in enumerate(DOCUMENTS)
    }
    _submit(client, "docs", list(ids))
    docs = documents(client, target.json()["collection_id"])
    assert len(docs) == len(DOCUMENTS)
    right = 0
    for doc in docs:
        expected = ids[doc["_internal"]["lineage"]["source_object_id"]]
        assert doc["category"] == doc["_internal"][f"_taxonomy_{tid}_label"]
        assert 0 < doc["_internal"][f"_taxonomy_{tid}_score"] <= 1
        assert len(doc["topics"]) == 1  # exactly once per document
        right += doc["category"] == expected
    accuracy = right / len(DOCUMENTS)
    with capsys.disabled():
        print(f"\nheld-out taxonomy accuracy: {right}/{len(DOCUMENTS)} = {accuracy:.2f}")
    assert accuracy >= 7 / 9
    copies = documents(client, downstream["collection_id"])
    assert sorted(d["category"] for d in copies) == sorted(d["category"] for d in docs)

    # Re-processing the same objects rewrites the same enrichment: nothing doubles.
    _submit(client, "docs", list(ids))
    again = documents(client, target.json()["collection_id"])
    assert all(len(d["topics"]) == 1 for d in again) and len(again) == len(DOCUMENTS)


def test_apply_taxonomy_task_and_new_version_replaces_values(
    client: TestClient, reference: dict[str, Any], runtime: Runtime
) -> None:
    passages = text_collection(
        client,
        "passages",
        {"type": "bucket", "bucket_ids": ["docs"]},
        split_by="none",
        model="minilm",
        passthrough=("title",),
    )
    ids = [add_object(client, text, bucket="docs", title=label) for text, label in DOCUMENTS[:6]]
    run(runtime, passages["collection_id"], ids)
    tid = create(client, "topics", flat_config(reference))["taxonomy_id"]
    request = {"taxonomy_id": tid, "batch_size": 100}
    refused = assert_error(client.post("/v1/collections/passages/apply-taxonomy", json=request), 400)
    assert "taxonomy_applications" in refused["error"]["message"]
    attached = client.patch("/v1/collections/passages", json={"taxonomy_applications": [{"taxonomy_id": tid}]})
    assert attached.status_code == 200, attached.text

    answer = client.post("/v1/collections/passages/apply-taxonomy", json=request)
    assert answer.status_code == 200, answer.text
    assert answer.json()["estimated_documents"] == 6 and answer.json()["taxonomy_id"] == tid
    task = wait_task(client, answer.json()["task_id"], timeout=60)
    assert task["status"] == "COMPLETED", task
    progress = task["additional_data"]["progress"]
    assert progress["processed"] == 6 and progress["enriched"] == 6 and progress["batches"] == 1
    before = {d["document_id"]: d for d in documents(client, "passages")}
    assert all(
        d["topics"] == [d["_internal"]["taxonomies"][tid]["written"] and d["topics"][0]][:1] or len(d["topics"]) == 1
        for d in before.values()
    )

    # A new version with other fields re-applies on its own: old values go, new ones come, never both.
    new = flat_config(reference)
    new["source_collection"]["enrichment_fields"] = [{"field_path": "title", "target_field": "topic_v2"}]
    version = client.post(f"/v1/taxonomies/{tid}/versions", json={"config": new}).json()
    (reapply,) = version["metadata"]["reapply_task_ids"]
    assert wait_task(client, reapply, timeout=60)["status"] == "COMPLETED"
    for doc in documents(client, "passages"):
        old = before[doc["document_id"]]
        assert "category" not in doc and doc.get("topics") == []
        assert doc["topic_v2"] == old["category"]
        assert doc["_internal"]["taxonomies"][tid]["version"] == 2
        assert doc["text"] == old["text"] and doc["title"] == old["title"]

    # Deleting is refused while a collection applies it; detached, it goes.
    assert_error(client.delete(f"/v1/taxonomies/{tid}"), 409)
    client.patch("/v1/collections/passages", json={"taxonomy_applications": []})
    assert client.delete(f"/v1/taxonomies/{tid}").status_code == 200


def test_hierarchy_from_a_path_field(client: TestClient, reference: dict[str, Any]) -> None:
    tid = create(client, "folders", {"taxonomy_type": "hierarchical", "path_field": "folder"})["taxonomy_id"]
    body = client.post(
        f"/v1/taxonomies/{tid}/execute",
        json={
            "source_documents": [
                {"document_id": "a", "folder": "footage/2024/q3"},
                {"document_id": "b", "folder": ["footage", "2023"]},
            ]
        },
    )
    first, second = body.json()["matches"]
    assert first["path"] == ["footage", "2024", "q3"] and first["hierarchy_level"] == 2 and first["label"] == "q3"
    assert second["path"] == ["footage", "2023"] and second["hierarchy_level"] == 1


def test_explicit_hierarchy_assigns_path_and_level(
    client: TestClient, reference: dict[str, Any], runtime: Runtime
) -> None:
    """Two levels: a root collection (domains) and the nodes under it."""
    make_bucket(client, "top")
    roots = text_collection(
        client,
        "domains",
        {"type": "bucket", "bucket_ids": ["top"]},
        split_by="none",
        model="minilm",
        passthrough=("title",),
    )
    run(
        runtime,
        roots["collection_id"],
        [add_object(client, "Nature, science and everyday life.", bucket="top", title="everything")],
    )
    uri = _feature_uri(client, roots["collection_id"])
    root_retriever = client.post(
        "/v1/retrievers",
        json={
            "retriever_name": "domain_search",
            "collection_identifiers": ["domains"],
            "input_schema": QUERY_SCHEMA,
            "stages": [
                {
                    "stage_name": "search",
                    "config": {
                        "stage_id": "feature_search",
                        "parameters": {"searches": [{"feature_uri": uri, "query": "{{INPUT.query}}", "top_k": 5}]},
                    },
                }
            ],
        },
    ).json()
    mapping = [{"input_key": "query", "source_type": "payload", "path": "text"}]
    tid = create(
        client,
        "tree",
        {
            "taxonomy_type": "hierarchical",
            "input_mappings": mapping,
            "hierarchical_nodes": [
                {
                    "collection_id": roots["collection_id"],
                    "retriever_id": root_retriever["retriever_id"],
                    "label": "root",
                    "enrichment_fields": [{"field_path": "title", "target_field": "domain"}],
                },
                {
                    "collection_id": reference["nodes"]["collection_id"],
                    "parent_collection_id": roots["collection_id"],
                    "retriever_id": reference["retriever_id"],
                    "enrichment_fields": [{"field_path": "title", "target_field": "category"}],
                },
            ],
        },
    )["taxonomy_id"]
    body = client.post(
        f"/v1/taxonomies/{tid}/execute",
        json={
            "source_documents": [
                {"document_id": "x", "text": "The astronaut floated past the window of the space station."}
            ]
        },
    ).json()
    best = body["matches"][0]
    assert best["path"] == ["everything", "astronomy"] and best["hierarchy_level"] == 1
    enriched = body["results"][0]
    assert enriched["category"] == "astronomy" and enriched["domain"] == "everything"  # inherited from the parent
    assert enriched["_internal"][f"_taxonomy_{tid}_path"] == ["everything", "astronomy"]


def test_bad_input_is_refused_and_changes_nothing(client: TestClient, reference: dict[str, Any]) -> None:
    def refused(config: dict[str, Any], status: int = 400) -> dict[str, Any]:
        return assert_error(client.post("/v1/taxonomies", json={"taxonomy_name": "bad", "config": config}), status)

    assert "does not exist" in refused(flat_config(reference, retriever_id="ret_nope"))["error"]["message"]
    wrong_key = flat_config(reference)
    wrong_key["input_mappings"] = [{"input_key": "q", "source_type": "payload", "path": "text"}]
    assert "no input 'q'" in refused(wrong_key)["error"]["message"]
    absent = flat_config(reference)
    absent["source_collection"]["enrichment_fields"] = [{"field_path": "colour"}]
    assert refused(absent)["error"]["details"]["absent_fields"] == ["colour"]
    refused({"taxonomy_type": "hierarchical", "inference_strategy": "llm", "inference_collections": ["x"]})
    refused({"taxonomy_type": "flat"}, 422)
    assert client.get("/v1/taxonomies").json()["total_count"] == 0

    # Another namespace's retriever.
    client.post("/v1/namespaces", json={"namespace_name": "other", "feature_extractors": []})
    other = client.post(
        "/v1/taxonomies",
        headers={"X-Namespace": "other"},
        json={"taxonomy_name": "bad", "config": flat_config(reference)},
    )
    assert "another namespace" in assert_error(other, 400)["error"]["message"]

    # Mappings naming a field or a vector the target collection lacks: refused where it is attached.
    tid = create(client, "topics", flat_config(reference))["taxonomy_id"]
    vector_mapped = flat_config(reference)
    vector_mapped["input_mappings"] = [{"input_key": "query", "source_type": "vector", "path": "no_such_vector"}]
    vid = create(client, "by_vector", vector_mapped)["taxonomy_id"]
    make_bucket(client, "plain")
    plain = text_collection(
        client,
        "plain_docs",
        {"type": "bucket", "bucket_ids": ["plain"]},
        split_by="none",
        model="minilm",
        mapping="content",
        passthrough=(),
    )
    plain_id = plain["collection_id"]
    body = assert_error(
        client.patch(f"/v1/collections/{plain_id}", json={"taxonomy_applications": [{"taxonomy_id": vid}]}), 400
    )
    assert "vector 'no_such_vector'" in body["error"]["message"]
    field_mapped = flat_config(reference)
    field_mapped["input_mappings"] = [{"input_key": "query", "source_type": "payload", "path": "summary"}]
    fid = create(client, "by_field", field_mapped)["taxonomy_id"]
    assert (
        "field 'summary'"
        in assert_error(
            client.patch(f"/v1/collections/{plain_id}", json={"taxonomy_applications": [{"taxonomy_id": fid}]}), 400
        )["error"]["message"]
    )
    assert client.get(f"/v1/collections/{plain_id}").json()["taxonomy_applications"] is None
    assert_error(
        client.post(
            "/v1/collections",
            json={
                "collection_name": "xyz_docs",
                "source": {"type": "bucket", "bucket_ids": ["plain"]},
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": "content"},
                },
                "taxonomy_applications": [{"taxonomy_id": "tax_missing"}],
            },
        ),
        404,
    )
    assert client.post("/v1/collections/list", json={"search": "xyz"}).json()["total_count"] == 0
    assert_error(
        client.post(
            f"/v1/collections/{plain_id}/apply-taxonomy", json={"taxonomy_id": tid, "budget_limits": {"max_credits": 1}}
        ),
        400,
    )


def _execute(client: TestClient, stages: list[dict[str, Any]], query: str) -> Any:
    """An ad-hoc execution of `stages` over the passages collection."""
    return client.post(
        "/v1/retrievers/execute",
        json={
            "collection_identifiers": ["passages"],
            "input_schema": QUERY_SCHEMA,
            "stages": stages,
            "inputs": {"query": query},
        },
    )


def test_taxonomy_enrich_stage_enriches_hits_without_writing(
    client: TestClient, reference: dict[str, Any], runtime: Runtime
) -> None:
    passages = text_collection(
        client,
        "passages",
        {"type": "bucket", "bucket_ids": ["docs"]},
        split_by="none",
        model="minilm",
        passthrough=("title",),
    )
    run(
        runtime,
        passages["collection_id"],
        [add_object(client, text, bucket="docs", title=label) for text, label in DOCUMENTS],
    )
    tid = create(client, "topics", flat_config(reference))["taxonomy_id"]
    uri = _feature_uri(client, passages["collection_id"])
    stages = [
        {
            "stage_name": "search",
            "config": {
                "stage_id": "feature_search",
                "parameters": {
                    "searches": [{"feature_uri": uri, "query": "{{INPUT.query}}", "top_k": 20}],
                    "final_top_k": 3,
                },
            },
        },
        {
            "stage_name": "label",
            "config": {
                "stage_id": "taxonomy_enrich",
                "parameters": {
                    "taxonomy_id": "topics",
                    "top_k": 1,
                    "fields": [{"field_path": "title", "target_field": "kind"}],
                },
            },
        },
    ]
    response = _execute(client, stages, "space missions and planets")
    assert response.status_code == 200, response.text
    hits = response.json()["documents"]
    assert len(hits) == 3 and all(h["kind"] == "astronomy" for h in hits)
    assert all(h["_internal"][f"_taxonomy_{tid}_label"] == "astronomy" for h in hits)
    assert response.json()["stage_statistics"]["stages"]["label"]["metadata"]["documents_enriched"] == 3
    assert all("kind" not in d for d in documents(client, "passages"))  # nothing was written

    # `when`: of nine hits, only the baking ones are enriched; the others pass through as they are.
    stages[0]["config"]["parameters"]["final_top_k"] = 9
    stages[1]["config"]["parameters"]["when"] = {"AND": [{"field": "title", "operator": "eq", "value": "baking"}]}
    chosen = _execute(client, stages, "bread and the sea")
    assert chosen.status_code == 200, chosen.text
    hits = chosen.json()["documents"]
    assert len(hits) == 9
    assert sorted((h["title"], h.get("kind")) for h in hits) == sorted(
        (label, "baking" if label == "baking" else None) for _, label in DOCUMENTS
    )
    assert chosen.json()["stage_statistics"]["stages"]["label"]["metadata"]["documents_enriched"] == 3
    del stages[1]["config"]["parameters"]["when"]

    stages[1]["config"]["parameters"]["taxonomy_id"] = "nope"
    missing = _execute(client, stages, "space")
    assert "'nope' not found" in assert_error(missing, 400)["error"]["message"]


def _target(client: TestClient, name: str, source: dict[str, Any]) -> Any:
    return client.post(
        "/v1/collections",
        json={
            "collection_name": name,
            "source": source,
            "feature_extractor": {"feature_extractor_name": "passthrough_extractor", "version": "v1"},
        },
    )


def test_a_taxonomy_source_collection_holds_the_enriched_output(
    client: TestClient, reference: dict[str, Any], runtime: Runtime
) -> None:
    """target_collection_id: the enriched documents go to a collection whose source is the taxonomy;
    the collection applying it is left as it is. Batches run the target one tier later, lineage
    walks through it, apply-taxonomy enriches it."""
    tid = create(client, "topics", flat_config(reference))["taxonomy_id"]
    passages = text_collection(
        client, "passages", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none", model="minilm"
    )
    pid = passages["collection_id"]
    created = _target(client, "passages_topics", {"type": "taxonomy", "collection_id": "passages"})
    assert created.status_code == 200, created.text
    target = created.json()
    assert target["source"]["type"] == "taxonomy" and target["source"]["collection_id"] == pid
    assert "text" in target["input_schema"]["properties"]
    attached = client.patch(
        f"/v1/collections/{pid}",
        json={"taxonomy_applications": [{"taxonomy_id": tid, "target_collection_id": "passages_topics"}]},
    )
    assert attached.status_code == 200, attached.text
    assert attached.json()["taxonomy_applications"][0]["target_collection_id"] == target["collection_id"]
    schema = client.get(f"/v1/collections/{target['collection_id']}").json()["output_schema"]["properties"]
    assert {"category", "topics"} <= set(schema)

    ids = {add_object(client, text, bucket="docs", title=label): label for text, label in DOCUMENTS}
    _submit(client, "docs", list(ids))
    own = documents(client, pid)
    assert len(own) == len(DOCUMENTS)
    assert all("category" not in d and "taxonomies" not in d["_internal"] for d in own)  # not in place
    enriched = documents(client, target["collection_id"])
    assert len(enriched) == len(DOCUMENTS)
    right = sum(d["category"] == ids[d["_internal"]["lineage"]["root_object_id"]] for d in enriched)
    assert right >= 7 and all(len(d["topics"]) == 1 for d in enriched)
    by_source = {d["document_id"]: d for d in own}
    one = enriched[0]
    lineage = client.get(f"/v1/collections/{target['collection_id']}/documents/{one['document_id']}/lineage").json()
    assert lineage["lineage"]["source_type"] == "taxonomy" and lineage["depth"] == 2
    assert lineage["lineage"]["source_document_id"] in by_source
    assert one["text"] == by_source[lineage["lineage"]["source_document_id"]]["text"]

    # apply-taxonomy enriches what the target holds (its scroll: the target's documents), exactly once.
    answer = client.post(f"/v1/collections/{pid}/apply-taxonomy", json={"taxonomy_id": tid, "batch_size": 100})
    assert answer.status_code == 200, answer.text
    assert answer.json()["target_collection_id"] == target["collection_id"]
    assert answer.json()["estimated_documents"] == len(DOCUMENTS)
    task = wait_task(client, answer.json()["task_id"], timeout=120)
    assert task["status"] == "COMPLETED" and task["additional_data"]["progress"]["processed"] == len(DOCUMENTS)
    again = {d["document_id"]: d for d in documents(client, target["collection_id"])}
    assert all(again[d["document_id"]]["category"] == d["category"] for d in enriched)
    assert all(len(d["topics"]) == 1 for d in again.values())
    assert all("category" not in d for d in documents(client, pid))

    # The target is held by the application; the source by the target that reads it.
    assert (
        "target_collection_id"
        in assert_error(client.delete(f"/v1/collections/{target['collection_id']}"), 409)["error"]["message"]
    )
    assert_error(client.delete(f"/v1/collections/{pid}"), 409)
    client.patch(f"/v1/collections/{pid}", json={"taxonomy_applications": []})
    assert client.delete(f"/v1/collections/{target['collection_id']}").status_code == 200


def test_taxonomy_sources_and_targets_refuse_bad_input(client: TestClient, reference: dict[str, Any]) -> None:
    tid = create(client, "topics", flat_config(reference))["taxonomy_id"]
    passages = text_collection(
        client, "passages", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none", model="minilm"
    )
    pid = passages["collection_id"]
    assert "collection_id" in assert_error(_target(client, "t_none", {"type": "taxonomy"}), 400)["error"]["message"]
    assert_error(_target(client, "t_bucket", {"type": "taxonomy", "bucket_ids": ["docs"]}), 400)
    assert_error(_target(client, "t_cluster", {"type": "cluster", "collection_id": pid}), 400)
    assert_error(_target(client, "t_missing", {"type": "taxonomy", "collection_id": "col_nope"}), 404)
    plain_copy = text_collection(
        client, "copies", {"type": "collection", "collection_id": pid}, mapping="text", split_by="none", model="minilm"
    )

    def refused(applications: list[dict[str, Any]], collection: str = pid) -> str:
        body = assert_error(
            client.patch(f"/v1/collections/{collection}", json={"taxonomy_applications": applications}), 400
        )
        return str(body["error"]["message"])

    # A target must be a taxonomy source reading this collection.
    assert "taxonomy" in refused([{"taxonomy_id": tid, "target_collection_id": plain_copy["collection_id"]}])
    assert "not a collection" in refused([{"taxonomy_id": tid, "target_collection_id": "col_nowhere"}])
    assert "twice" in refused([{"taxonomy_id": tid}, {"taxonomy_id": tid}])
    assert "hierarchical_enrichment_style" in refused([{"taxonomy_id": tid, "hierarchical_enrichment_style": "x"}])
    # A taxonomy whose nodes are written from the collection it enriches: a cycle.
    nodes_id = reference["nodes"]["collection_id"]
    assert "cycle" in refused([{"taxonomy_id": tid}], nodes_id)
    assert client.get(f"/v1/collections/{pid}").json()["taxonomy_applications"] is None
    assert client.get(f"/v1/collections/{nodes_id}").json()["taxonomy_applications"] is None

    # A new version that an applying collection could not take changes nothing. (A target naming
    # the collection itself is in place, and stored as such.)
    own = [{"taxonomy_id": tid, "target_collection_id": pid}]
    attached = client.patch(f"/v1/collections/{pid}", json={"taxonomy_applications": own})
    assert attached.status_code == 200 and "target_collection_id" not in attached.json()["taxonomy_applications"][0]
    unreadable = flat_config(reference)
    unreadable["input_mappings"] = [{"input_key": "query", "source_type": "payload", "path": "summary"}]
    body = assert_error(client.post(f"/v1/taxonomies/{tid}/versions", json={"config": unreadable}), 400)
    assert body["error"]["details"]["collection_id"] == pid and "summary" in body["error"]["message"]
    assert client.get(f"/v1/taxonomies/{tid}").json()["version"] == 1
    assert len(client.get(f"/v1/taxonomies/{tid}/versions").json()["results"]) == 1
    tasks = client.post("/v1/tasks/list", json={}).json()["results"]
    assert not [t for t in tasks if t["task_type"] == "api_taxonomies_materialize"]


def test_hierarchical_enrichment_style_of_an_application(
    client: TestClient, reference: dict[str, Any], runtime: Runtime
) -> None:
    """A path hierarchy applied with each style; changing the style and re-applying replaces the old fields."""
    make_bucket(client, "files")
    files = text_collection(
        client,
        "files",
        {"type": "bucket", "bucket_ids": ["files"]},
        split_by="none",
        model="minilm",
        passthrough=("title",),
    )
    run(runtime, files["collection_id"], [add_object(client, "a clip", bucket="files", title="footage/2024/q3")])
    tid = create(client, "folders", {"taxonomy_type": "hierarchical", "path_field": "title"})["taxonomy_id"]

    def applied(style: str) -> dict[str, Any]:
        apps = [{"taxonomy_id": tid, "hierarchical_enrichment_style": style}]
        assert client.patch("/v1/collections/files", json={"taxonomy_applications": apps}).status_code == 200
        answer = client.post("/v1/collections/files/apply-taxonomy", json={"taxonomy_id": tid})
        assert wait_task(client, answer.json()["task_id"], timeout=60)["status"] == "COMPLETED"
        (doc,) = documents(client, files["collection_id"])
        return doc

    chain = applied("full_chain")
    assert [chain[f"folders_tier{n}_name"] for n in (1, 2, 3)] == ["footage", "2024", "q3"]
    assert "folders_path" not in chain
    best = applied("best_match")
    assert best["folders_path"] == ["footage", "2024", "q3"] and best["folders_name"] == "q3"
    assert best["folders_id"] == chain["folders_tier3_id"]
    assert not [k for k in best if "_tier" in k]  # the full chain's fields went: never a mix
    both = applied("combined")
    assert both["folders_path"] == best["folders_path"] and both["folders_tier1_name"] == "footage"
    schema = client.get("/v1/collections/files").json()["output_schema"]["properties"]
    assert {"folders_id", "folders_name", "folders_path", "folders_score"} <= set(schema)


def test_a_batch_enricher_takes_a_new_version_from_its_next_chunk(
    client: TestClient, reference: dict[str, Any], runtime: Runtime
) -> None:
    """A version made while a batch runs: the tier's enricher uses it from the next chunk on, so the
    batch does not go on writing the old version's values; each document holds one version's."""
    tid = create(client, "topics", flat_config(reference))["taxonomy_id"]
    passages = text_collection(
        client, "passages", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none", model="minilm"
    )
    pid = passages["collection_id"]
    run(runtime, pid, [add_object(client, text, bucket="docs", title=label) for text, label in DOCUMENTS[:2]])
    assert (
        client.patch(f"/v1/collections/{pid}", json={"taxonomy_applications": [{"taxonomy_id": tid}]}).status_code
        == 200
    )
    with runtime.db.read_session() as session:
        collection = session.get(Collection, pid)
        assert collection is not None
        session.expunge(collection)
    enricher = collection_enricher(runtime.db, runtime.index, collection)
    assert enricher is not None
    chunk = runtime.index.query(pid, None, with_vectors=True)
    enricher(chunk)
    assert all(d.payload["category"] == "marine life" and d.internal["taxonomies"][tid]["version"] == 1 for d in chunk)
    new = flat_config(reference)
    new["source_collection"]["enrichment_fields"] = [{"field_path": "title", "target_field": "topic_v2"}]
    assert client.post(f"/v1/taxonomies/{tid}/versions", json={"config": new}).status_code == 200
    enricher(chunk)
    for doc in chunk:
        assert "category" not in doc.payload and doc.payload["topic_v2"] == "marine life"
        assert doc.internal["taxonomies"][tid]["version"] == 2


def test_min_score_leaves_weak_matches_out(client: TestClient, reference: dict[str, Any]) -> None:
    whale = {"source_documents": [{"document_id": "w", "text": "A whale sang to its calf in the deep blue water."}]}
    loose = create(client, "loose", flat_config(reference, min_score=0.0))["taxonomy_id"]
    strict = create(client, "strict", flat_config(reference, min_score=0.99))["taxonomy_id"]
    found = client.post(f"/v1/taxonomies/{loose}/execute", json=whale).json()
    assert found["stats"]["enriched"] == 1 and found["matches"][0]["score"] < 0.99
    none = client.post(f"/v1/taxonomies/{strict}/execute", json=whale).json()
    assert none["stats"]["enriched"] == 0 and none["matches"] == [] and "category" not in none["results"][0]


def test_a_taxonomy_with_an_apply_task_in_flight_is_not_deleted(
    client: TestClient, reference: dict[str, Any], runtime: Runtime, namespace: dict[str, Any]
) -> None:
    """The task is made in a transaction no worker sees, so it is certainly not finished when the
    delete runs in that same transaction: 409, and the taxonomy stays."""
    tid = create(client, "topics", flat_config(reference))["taxonomy_id"]
    session = runtime.db.session()
    try:
        row = session.get(Namespace, namespace["namespace_id"])
        assert row is not None
        scope = NamespaceScope(row.org_id, row.namespace_id, row.namespace_name)
        create_task(
            session,
            scope.org_id,
            TaskType.TAXONOMIES_MATERIALIZE,
            namespace_id=scope.namespace_id,
            inputs=[{}],
            additional_data={"taxonomy_id": tid},
        )
        session.flush()
        with pytest.raises(ConflictError, match="being applied"):
            delete_taxonomy(session, scope, tid)
    finally:
        session.rollback()
        session.close()
    assert client.get(f"/v1/taxonomies/{tid}").status_code == 200


def test_apply_taxonomy_resumes_after_the_last_document_done(
    client: TestClient, reference: dict[str, Any], runtime: Runtime
) -> None:
    """A task taken over after a lost lease starts after `progress.last_document_id`, not again."""
    tid = create(client, "topics", flat_config(reference))["taxonomy_id"]
    passages = text_collection(
        client, "passages", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none", model="minilm"
    )
    pid = passages["collection_id"]
    run(runtime, pid, [add_object(client, text, bucket="docs", title=label) for text, label in DOCUMENTS[:6]])
    assert (
        client.patch(f"/v1/collections/{pid}", json={"taxonomy_applications": [{"taxonomy_id": tid}]}).status_code
        == 200
    )
    ids = sorted(d["document_id"] for d in documents(client, pid))
    spec = {"collection_id": pid, "taxonomy_id": tid, "version": 1, "batch_size": 100, "parallelism": 1}
    with runtime.db.transaction() as session:
        collection = session.get(Collection, pid)
        assert collection is not None
        owner = session.get(Namespace, collection.namespace_id)
        assert owner is not None
        made = create_task(
            session,
            owner.org_id,
            TaskType.TAXONOMIES_MATERIALIZE,
            namespace_id=owner.namespace_id,
            inputs=[spec],
            additional_data={
                "taxonomy_id": tid,
                "progress": {"processed": 3, "batches": 1, "last_document_id": ids[2]},
            },
        )
        # Held by "another worker" far into the future: this process's own runner leaves it alone.
        transitions.claim(
            session, made, Status.PROCESSING, "test-takeover", utcnow() + timedelta(hours=1), "taken over"
        )
        task_id = made.task_id
    with runtime.db.read_session() as session:
        task = session.get(Task, task_id)
        assert task is not None
        session.expunge(task)
    context = JobContext(
        db=runtime.db, blobs=runtime.blobs, settings=runtime.settings, services={"index": runtime.index}
    )
    outcome = apply_job(context, task)
    assert outcome.status == Status.COMPLETED, outcome
    progress = (outcome.additional_data or {})["progress"]
    assert progress["processed"] == 6 and progress["batches"] == 2 and progress["last_document_id"] == ids[-1]
    enriched = {d["document_id"]: "category" in d for d in documents(client, pid)}
    assert [i for i in ids if enriched[i]] == ids[3:]  # the first three were "done" before the takeover


def test_an_applications_scroll_filters_limit_what_it_enriches(
    client: TestClient, reference: dict[str, Any], runtime: Runtime
) -> None:
    """TaxonomyApplicationConfig.scroll_filters: apply-taxonomy scrolls only the documents they
    select (with the request's own filters on top), and a batch enriches only those."""
    tid = create(client, "topics", flat_config(reference))["taxonomy_id"]
    passages = text_collection(
        client, "passages", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none", model="minilm"
    )
    pid = passages["collection_id"]
    run(runtime, pid, [add_object(client, text, bucket="docs", title=label) for text, label in DOCUMENTS[:6]])
    bad = [{"taxonomy_id": tid, "scroll_filters": {"AND": [{"field": "title", "operator": "near", "value": 1}]}}]
    assert_error(client.patch(f"/v1/collections/{pid}", json={"taxonomy_applications": bad}), 400)
    filters = {"AND": [{"field": "title", "operator": "eq", "value": "BAKING"}]}  # case-insensitive, as the index
    apps = [{"taxonomy_id": tid, "scroll_filters": filters}]
    assert client.patch(f"/v1/collections/{pid}", json={"taxonomy_applications": apps}).status_code == 200

    answer = client.post(f"/v1/collections/{pid}/apply-taxonomy", json={"taxonomy_id": tid}).json()
    assert answer["estimated_documents"] == 3
    assert wait_task(client, answer["task_id"], timeout=60)["status"] == "COMPLETED"
    assert sorted((d["title"], d.get("category")) for d in documents(client, pid)) == [
        *[("baking", "baking")] * 3,
        *[("marine life", None)] * 3,
    ]
    narrower = {"taxonomy_id": tid, "scroll_filters": {"AND": [{"field": "title", "operator": "eq", "value": "x"}]}}
    assert client.post(f"/v1/collections/{pid}/apply-taxonomy", json=narrower).json()["estimated_documents"] == 0

    with runtime.db.read_session() as session:
        collection = session.get(Collection, pid)
        assert collection is not None
        session.expunge(collection)
    enricher = collection_enricher(runtime.db, runtime.index, collection)
    assert enricher is not None
    chunk = runtime.index.query(pid, None, with_vectors=True)
    for doc in chunk:  # as a batch builds them: not enriched yet
        clear(doc.payload, doc.internal, tid)
    enricher(chunk)
    assert sorted((d.payload["title"], d.payload.get("category")) for d in chunk) == [
        *[("baking", "baking")] * 3,
        *[("marine life", None)] * 3,
    ]
