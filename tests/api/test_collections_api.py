"""Collections over the API on SQLite and PostgreSQL: lifecycle, validation, DAG rules, the catalogue."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.runtime import Runtime
from tests.collection_flows import add_object, make_bucket, run, text_collection
from tests.helpers import assert_error


def test_collection_lifecycle(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> None:
    bucket_id = make_bucket(client)
    created = text_collection(
        client, "chunks", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="words", chunk_size=50, model="wordllama"
    )
    assert created["collection_id"].startswith("col_") and len(created["collection_id"]) == 14
    assert created["source"] == {"type": "bucket", "bucket_ids": [bucket_id]}
    extractor = created["feature_extractor"]
    assert extractor["feature_extractor_id"] == "text_extractor_v1"
    assert extractor["parameters"]["extractor_type"] == "text_extractor"
    output = created["output_schema"]["properties"]
    assert output["title"]["type"] == "string" and output["chunk_index"]["type"] == "integer"
    assert output["text_extractor_v1_wordllama_l2_supercat_256"]["dimensions"] == 256
    [index] = created["vector_indexes"]
    assert index["feature_uri"] == "mixpeek://text_extractor@v1/wordllama_l2_supercat_256"
    assert created["document_count"] == 0

    assert client.get("/v1/collections/chunks").json()["collection_id"] == created["collection_id"]
    listed = client.post("/v1/collections/list", json={"search": "CHUNK"}).json()
    assert listed["total_count"] == 1 and listed["results"][0]["collection_name"] == "chunks"
    assert client.get("/v1/collections").json()["total_count"] == 1

    patched = client.patch(
        f"/v1/collections/{created['collection_id']}",
        json={"description": "word chunks", "metadata": {"team": "search"}, "enabled": False},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["description"], patched.json()["enabled"]) == ("word chunks", False)
    assert_error(client.patch("/v1/collections/chunks", json={"feature_extractor": {}}), 400, "BadRequestError")

    features = client.get("/v1/collections/chunks/features").json()["features"]
    assert features[0]["feature_uri"] == index["feature_uri"] and features[0]["vector_index"]["dimensions"] == 256

    run(runtime, created["collection_id"], [add_object(client, "one two three", title="T")])
    assert client.get("/v1/collections/chunks").json()["document_count"] == 1
    deleted = client.delete("/v1/collections/chunks")
    assert deleted.status_code == 200 and deleted.json()["documents_deleted"] == 1
    assert_error(client.get("/v1/collections/chunks"), 404, "NotFoundError")
    assert not runtime.index.has_table(created["collection_id"])


BAD_EXTRACTORS: list[tuple[dict[str, Any], int, str]] = [
    ({"feature_extractor_name": "nope_extractor", "version": "v1"}, 400, "Unknown feature extractor 'nope_extractor'"),
    ({"feature_extractor_name": "text_extractor", "version": "v7"}, 400, "no version 'v7'"),
    (
        {
            "feature_extractor_name": "text_extractor",
            "version": "v1",
            "input_mappings": {"text": "content"},
            "parameters": {"chunk_size": 20000},
        },
        422,
        "chunk_size",
    ),
    (
        {"feature_extractor_name": "text_extractor", "version": "v1", "input_mappings": {"text": "body"}},
        400,
        "'body', which is not in the collection's input schema",
    ),
    (
        {"feature_extractor_name": "text_extractor", "version": "v1", "input_mappings": {"text": "views"}},
        400,
        "takes text, but 'views' is integer",
    ),
    (
        {"feature_extractor_name": "text_extractor", "version": "v1", "input_mappings": {"image": "content"}},
        400,
        "has no input 'image'",
    ),
    ({"feature_extractor_name": "text_extractor", "version": "v1"}, 400, "needs input 'text'"),
    (
        {
            "feature_extractor_name": "text_extractor",
            "version": "v1",
            "input_mappings": {"text": "content"},
            "field_passthrough": [{"source_path": "title", "target_path": "chunk_index"}],
        },
        400,
        "collides with an extractor output",
    ),
    (
        {
            "feature_extractor_name": "text_extractor",
            "version": "v1",
            "input_mappings": {"text": "content"},
            "field_passthrough": [{"source_path": "title", "target_path": "document_id"}],
        },
        400,
        "collides with a system field",
    ),
    (
        {
            "feature_extractor_name": "text_extractor",
            "version": "v1",
            "input_mappings": {"text": "content"},
            "field_passthrough": [{"source_path": "author"}],
        },
        400,
        "'author' is not in the collection's input schema",
    ),
]


@pytest.mark.parametrize("extractor, status, message", BAD_EXTRACTORS)
def test_bad_extractor_config_is_refused_and_leaves_nothing(
    client: TestClient,
    namespace: dict[str, Any],
    runtime: Runtime,
    extractor: dict[str, Any],
    status: int,
    message: str,
) -> None:
    make_bucket(client)
    response = client.post(
        "/v1/collections",
        json={
            "collection_name": "bad_one",
            "source": {"type": "bucket", "bucket_ids": ["docs"]},
            "feature_extractor": extractor,
        },
    )
    body = assert_error(response, status)
    assert message in body["error"]["message"], body
    assert client.post("/v1/collections/list").json()["total_count"] == 0
    assert list(runtime.index._db.list_tables().tables) == []


def test_bad_sources_and_names(client: TestClient, namespace: dict[str, Any]) -> None:
    make_bucket(client)
    extractor = {"feature_extractor_name": "text_extractor", "version": "v1", "input_mappings": {"text": "content"}}
    cases = [
        ({"collection_name": "ab", "source": {"type": "bucket", "bucket_ids": ["docs"]}}, 422),
        ({"collection_name": "has space", "source": {"type": "bucket", "bucket_ids": ["docs"]}}, 422),
        ({"collection_name": "missing_bucket", "source": {"type": "bucket", "bucket_ids": ["nope"]}}, 404),
        (
            {
                "collection_name": "mixed_src",
                "source": {"type": "bucket", "bucket_ids": ["docs"], "collection_id": "x"},
            },
            400,
        ),
        ({"collection_name": "self_ref", "source": {"type": "collection", "collection_id": "self_ref"}}, 400),
        ({"collection_name": "taxo_src", "source": {"type": "taxonomy"}}, 400),
    ]
    for body, status in cases:
        assert_error(client.post("/v1/collections", json={**body, "feature_extractor": extractor}), status)
    ok = {"collection_name": "fine", "source": {"type": "bucket", "bucket_id": "docs"}, "feature_extractor": extractor}
    assert client.post("/v1/collections", json=ok).status_code == 200
    assert_error(client.post("/v1/collections", json=ok), 409, "AlreadyExistsError")


def test_multi_bucket_sources_must_agree(client: TestClient, namespace: dict[str, Any]) -> None:
    make_bucket(client, "docs")
    make_bucket(client, "docs_eu")
    assert (
        client.post(
            "/v1/buckets", json={"bucket_name": "other", "bucket_schema": {"properties": {"content": {"type": "text"}}}}
        ).status_code
        == 200
    )
    extractor = {"feature_extractor_name": "text_extractor", "version": "v1", "input_mappings": {"text": "content"}}
    both = client.post(
        "/v1/collections",
        json={
            "collection_name": "two",
            "feature_extractor": extractor,
            "source": {"type": "bucket", "bucket_ids": ["docs", "docs_eu"]},
        },
    )
    assert both.status_code == 200 and len(both.json()["source"]["bucket_ids"]) == 2
    clash = client.post(
        "/v1/collections",
        json={
            "collection_name": "three",
            "feature_extractor": extractor,
            "source": {"type": "bucket", "bucket_ids": ["docs", "other"]},
        },
    )
    assert "incompatible schemas" in assert_error(clash, 400)["error"]["message"]


def test_upstream_collection_and_delete_guard(client: TestClient, namespace: dict[str, Any]) -> None:
    make_bucket(client)
    tier0 = text_collection(
        client,
        "paragraphs",
        {"type": "bucket", "bucket_ids": ["docs"]},
        split_by="paragraphs",
        chunk_size=1,
        model="wordllama",
    )
    tier1 = text_collection(
        client,
        "sentences",
        {"type": "collection", "collection_id": "paragraphs"},
        mapping="text",
        passthrough=(),
        split_by="sentences",
        chunk_size=1,
        model="wordllama",
    )
    assert tier1["input_schema"] == tier0["output_schema"]
    assert tier1["source"]["inherited_bucket_ids"] == tier0["source"]["bucket_ids"]
    assert len(tier1["source_lineage"]) == 2
    copy = client.post(
        "/v1/collections",
        json={
            "collection_name": "copies",
            "source": {"type": "collection", "collection_id": tier1["collection_id"]},
            "feature_extractor": {"feature_extractor_name": "passthrough_extractor", "version": "v1"},
        },
    )
    assert copy.status_code == 200, copy.text
    assert copy.json()["vector_indexes"] == tier1["vector_indexes"]
    assert "chunk_index" in copy.json()["output_schema"]["properties"]
    refused = assert_error(client.delete("/v1/collections/paragraphs"), 409)
    assert refused["error"]["details"]["dependent_collection_ids"] == [tier1["collection_id"]]
    assert client.delete("/v1/collections/copies").status_code == 200
    assert client.delete("/v1/collections/sentences").status_code == 200
    assert client.delete("/v1/collections/paragraphs").status_code == 200


def test_catalogue_global_and_per_namespace(client: TestClient, namespace: dict[str, Any]) -> None:
    listed = client.get("/v1/collections/features/extractors").json()
    assert {e["feature_extractor_id"] for e in listed} >= {"text_extractor_v1", "passthrough_extractor_v1"}
    one = client.get("/v1/collections/features/extractors/text_extractor_v1").json()
    assert one["max_inputs"] == {"text": 1} and one["supported_input_types"] == ["text"]
    assert_error(client.get("/v1/collections/features/extractors/nope_v1"), 404)
    scoped = client.get(f"/v1/namespaces/{namespace['namespace_id']}/extractors").json()
    assert scoped["total"] == len(listed) and scoped["builtin_count"] == len(listed)


def test_namespace_deletion_removes_collections_and_tables(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    from tests.helpers import wait_task

    make_bucket(client)
    created = text_collection(client, "chunks", {"type": "bucket", "bucket_ids": ["docs"]}, model="wordllama")
    assert client.get(f"/v1/namespaces/{namespace['namespace_id']}").json()["collection_count"] == 1
    task = client.delete(f"/v1/namespaces/{namespace['namespace_id']}").json()
    assert wait_task(client, task["task_id"])["status"] == "COMPLETED"
    assert not runtime.index.has_table(created["collection_id"])


def test_list_sorts_and_include_system(client: TestClient, namespace: dict[str, Any]) -> None:
    make_bucket(client)
    for name, rank in [("alpha", 1), ("bravo", 2), ("charlie", 1)]:
        text_collection(client, name, {"type": "bucket", "bucket_ids": ["docs"]}, model="wordllama")
        client.patch(f"/v1/collections/{name}", json={"metadata": {"rank": rank}})
    sorts = [{"field": "metadata.rank", "direction": "desc"}, {"field": "collection_name", "direction": "desc"}]
    listed = client.post("/v1/collections/list", json={"sorts": sorts}).json()
    assert [c["collection_name"] for c in listed["results"]] == ["bravo", "charlie", "alpha"]
    # `sorts` is primary; the legacy `sort` breaks its ties only
    both = {"sorts": sorts[:1], "sort": {"field": "collection_name", "direction": "asc"}, "page_size": 2, "page": 2}
    assert [c["collection_name"] for c in client.post("/v1/collections/list", json=both).json()["results"]] == [
        "charlie"
    ]
    # Strataflow has no system collections: include_system lists the same collections
    system = client.post("/v1/collections/list", json={"sorts": sorts, "include_system": True}).json()
    assert [c["collection_name"] for c in system["results"]] == ["bravo", "charlie", "alpha"] and system[
        "total_count"
    ] == 3
    body = assert_error(client.post("/v1/collections/list", json={"sorts": [{"field": "secret"}]}), 400)
    assert "secret" in body["error"]["message"]
    assert_error(client.post("/v1/collections/list", json={"include_system": "maybe"}), 422)
