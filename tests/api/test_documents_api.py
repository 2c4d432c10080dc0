"""Documents and lineage over the API on SQLite and PostgreSQL, written by the synchronous collection runner."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.runtime import Runtime
from tests.collection_flows import add_object, make_bucket, run, text_collection
from tests.helpers import assert_error

VECTOR = "text_extractor_v1_wordllama_l2_supercat_256"
ARTICLES = [
    ("Rivers carve valleys. Glaciers carve fjords. Wind shapes dunes.", "Geology", 30, "en"),
    ("Bread needs flour. Yeast makes it rise.", "Baking", 5, "en"),
    ("Le pain a besoin de farine.", "Pain", 12, "fr"),
]


@pytest.fixture
def chunks(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    make_bucket(client)
    collection = text_collection(
        client,
        "sentences",
        {"type": "bucket", "bucket_ids": ["docs"]},
        split_by="sentences",
        chunk_size=1,
        model="wordllama",
        passthrough=("title", "views", "lang"),
    )
    objects = [add_object(client, text, title=title, views=views, lang=lang) for text, title, views, lang in ARTICLES]
    result = run(runtime, collection["collection_id"], objects)
    assert result.failures == [] and result.documents_written == 6
    return {"collection": collection, "objects": objects, "result": result}


def listing(client: TestClient, body: dict[str, Any], query: str = "") -> dict[str, Any]:
    response = client.post(f"/v1/collections/sentences/documents/list{query}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_list_filter_sort_select_and_pages(client: TestClient, chunks: dict[str, Any]) -> None:
    everything = listing(client, {"limit": 10, "offset": 0, "return_vectors": False}, "?include_total=true")
    assert everything["pagination"]["total"] == 6 and len(everything["results"]) == 6
    first = everything["results"][0]
    assert VECTOR not in first and first["_internal"]["lineage"]["source_type"] == "bucket"
    assert first["title"] in {"Geology", "Baking", "Pain"}

    geology = listing(
        client,
        {
            "filters": {"AND": [{"field": "title", "operator": "eq", "value": "geology"}]},
            "sort": {"field": "chunk_index", "direction": "desc"},
        },
    )
    assert [d["text"] for d in geology["results"]] == [
        "Wind shapes dunes.",
        "Glaciers carve fjords.",
        "Rivers carve valleys.",
    ]
    by_root = listing(
        client,
        {"filters": {"field": "_internal.lineage.root_object_id", "operator": "eq", "value": chunks["objects"][1]}},
    )
    assert {d["text"] for d in by_root["results"]} == {"Bread needs flour.", "Yeast makes it rise."}
    picked = listing(
        client,
        {
            "filters": {"field": "text", "operator": "contains", "value": "carve"},
            "select": ["text", "_internal.lineage.root_object_id"],
        },
    )
    assert all(set(d) == {"document_id", "collection_id", "text", "_internal"} for d in picked["results"])

    # limit/offset in the body (the SDK) win over the query string; cursors walk on.
    page1 = listing(client, {"limit": 4, "sort": {"field": "text", "direction": "asc"}}, "?limit=1")
    assert len(page1["results"]) == 4 and page1["pagination"]["next_cursor"]
    page2 = listing(
        client,
        {"cursor": page1["pagination"]["next_cursor"], "limit": 4, "sort": {"field": "text", "direction": "asc"}},
    )
    texts = [d["text"] for d in page1["results"] + page2["results"]]
    assert texts == sorted(texts) and len(set(texts)) == 6 and page2["pagination"]["next_cursor"] is None
    assert len(listing(client, {}, "?limit=2&offset=5")["results"]) == 1

    with_vectors = listing(client, {"return_vectors": True, "limit": 1})["results"][0]
    assert len(with_vectors[VECTOR]) == 256
    grouped = listing(client, {"group_by": "lang"})
    assert {g["group_key"]: g["count"] for g in grouped["groups"]} == {"en": 5, "fr": 1}
    searched = listing(client, {"search": "FARINE"})
    assert [d["title"] for d in searched["results"]] == ["Pain"]

    bad = client.post(
        "/v1/collections/sentences/documents/list",
        json={"filters": {"field": "text", "operator": "fuzzy", "value": "x"}},
    )
    assert "Unknown filter operator 'fuzzy'" in assert_error(bad, 400)["error"]["message"]
    assert_error(
        client.post(
            "/v1/collections/sentences/documents/list", json={"filters": {"field": VECTOR, "operator": "exists"}}
        ),
        400,
    )


def test_document_writes(client: TestClient, chunks: dict[str, Any]) -> None:
    base = "/v1/collections/sentences/documents"
    doc_id = chunks["result"].document_ids[0]
    got = client.get(f"{base}/{doc_id}", params={"return_vectors": "true"}).json()
    assert got["document_id"] == doc_id and len(got[VECTOR]) == 256

    patched = client.patch(f"{base}/{doc_id}", json={"reviewed": True, "title": "Geo"})
    assert patched.status_code == 200 and patched.json()["reviewed"] is True and patched.json()["chunk_index"] == 0
    replaced = client.put(f"{base}/{doc_id}", json={"note": "only this", "document_id": doc_id})
    assert replaced.status_code == 200
    assert "text" not in replaced.json() and replaced.json()["note"] == "only this"
    assert len(client.get(f"{base}/{doc_id}?return_vectors=true").json()[VECTOR]) == 256  # vectors stay
    assert_error(client.patch(f"{base}/{doc_id}", json={"root_object_id": "x"}), 400)
    assert_error(client.get(f"{base}/doc_000000000000000000000000"), 404)

    created = client.post(
        base,
        json={
            "collection_id": chunks["collection"]["collection_id"],
            "metadata": {"origin": "manual"},
            "text": "Hand written.",
            "features": [{"feature_extractor_id": "text_extractor_v1", "payload": {"chunk_index": 0}}],
        },
    )
    assert created.status_code == 200, created.text
    new_id = created.json()["document_id"]
    assert created.json()["metadata"] == {"origin": "manual"} and created.json()["text"] == "Hand written."
    assert_error(client.post(base, json={"features": [{"feature_extractor_id": "x", "vectors": [0.1, 0.2]}]}), 400)

    bulk = client.patch(
        f"{base}/bulk",
        json={"filters": {"field": "lang", "operator": "eq", "value": "en"}, "update_data": {"checked": 1}},
    )
    assert bulk.json()["updated_count"] == 4  # the replaced document has no `lang` any more
    batch = client.post(
        f"{base}/batch",
        json={
            "updates": [
                {"document_id": new_id, "update_data": {"x": 1}},
                {"document_id": "doc_missing", "update_data": {"x": 1}},
            ]
        },
    )
    assert (batch.json()["updated_count"], batch.json()["failed_count"]) == (1, 1)
    aggregate = client.post(
        f"{base}/aggregate",
        json={
            "group_by": [{"field": "lang"}],
            "aggregations": [
                {"function": "count", "alias": "n"},
                {"function": "sum", "field": "views", "alias": "v"},
                {"function": "max", "field": "chunk_index", "alias": "last"},
            ],
        },
    ).json()
    by_lang = {r["group"]["lang"]: r["metrics"] for r in aggregate["results"]}
    assert by_lang["fr"] == {"n": 1, "v": 12.0, "last": 0.0}
    assert by_lang["en"]["n"] == 4 and by_lang[None]["n"] == 2

    removed = client.request("DELETE", f"{base}/batch", json={"document_ids": [new_id, "doc_missing"]}).json()
    assert (removed["deleted_count"], removed["failed_count"]) == (1, 1)
    by_filter = client.request(
        "DELETE", f"{base}/batch", json={"filters": {"field": "lang", "operator": "eq", "value": "fr"}}
    ).json()
    assert by_filter["deleted_count"] == 1
    assert client.delete(f"{base}/{doc_id}").json()["success"] is True
    assert listing(client, {}, "?include_total=true")["pagination"]["total"] == 4


def test_rerun_overwrites_and_drops_stale_chunks(client: TestClient, chunks: dict[str, Any], runtime: Runtime) -> None:
    collection_id, objects = chunks["collection"]["collection_id"], chunks["objects"]
    again = run(runtime, collection_id, objects)
    assert sorted(again.document_ids) == sorted(chunks["result"].document_ids)
    assert listing(client, {}, "?include_total=true")["pagination"]["total"] == 6
    client.put(
        f"/v1/buckets/docs/objects/{objects[0]}",
        json={
            "blobs": [{"property": "content", "type": "text", "data": "Only one sentence now."}],
            "metadata": {"title": "Geology"},
        },
    )
    shorter = run(runtime, collection_id, [objects[0]])
    assert shorter.stale_documents_removed == 2
    assert listing(client, {}, "?include_total=true")["pagination"]["total"] == 4


def test_lineage_across_two_collections(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> None:
    make_bucket(client)
    paragraphs = text_collection(
        client, "paragraphs", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="paragraphs", chunk_size=1
    )  # the default model, MiniLM
    sentences = text_collection(
        client,
        "sentences",
        {"type": "collection", "collection_id": "paragraphs"},
        mapping="text",
        passthrough=(),
        split_by="sentences",
        chunk_size=1,
        model="wordllama",
    )
    obj = add_object(client, "Cats purr. Dogs bark.\n\nBirds sing.", title="Animals")
    bad = client.post(
        "/v1/buckets/docs/objects",
        json={"blobs": [{"property": "content", "type": "text", "data": "data:text/plain;base64,//79"}]},
    ).json()
    first = run(runtime, paragraphs["collection_id"], [obj, bad["object_id"]])
    assert first.documents_written == 2
    assert [(f.source_id, f.error_type) for f in first.failures] == [(bad["object_id"], "validation")]
    second = run(runtime, sentences["collection_id"])
    assert second.documents_written == 3 and second.failures == []

    leaf = second.document_ids[0]
    lineage = client.get(f"/v1/collections/{sentences['collection_id']}/documents/{leaf}/lineage").json()
    assert lineage["depth"] == 2 and lineage["total_steps"] == 2
    info = lineage["lineage"]
    assert info["root_object_id"] == obj and info["source_type"] == "collection"
    assert info["source_collection_id"] == paragraphs["collection_id"]
    assert info["source_document_id"] in first.document_ids
    assert [s["collection_id"] for s in info["lineage_chain"]] == [
        paragraphs["collection_id"],
        sentences["collection_id"],
    ]
    assert info["path"].endswith(f"{paragraphs['collection_id']}/{sentences['collection_id']}")
    parent = client.get(f"/v1/collections/paragraphs/documents/{info['source_document_id']}/lineage").json()
    assert parent["depth"] == 1 and parent["lineage"]["source_object_id"] == obj
    leaf_doc = client.get(f"/v1/collections/sentences/documents/{leaf}").json()
    assert leaf_doc["_internal"]["source_blobs"][0]["blob_property"] == "content"
    assert leaf_doc["_internal"]["metadata"]["feature_extractor_id"] == "text_extractor_v1"

    by_object = client.get(f"/v1/objects/{obj}/documents").json()
    assert by_object["total"] == 5
    assert by_object["by_collection"] == {paragraphs["collection_id"]: 2, sentences["collection_id"]: 3}
    only = client.get(f"/v1/objects/{obj}/documents", params={"collection_ids": sentences["collection_id"]}).json()
    assert only["total"] == 3

    tree = client.get(f"/v1/objects/{obj}/decomposition-tree", params={"include_document_ids": "true"}).json()
    [root] = tree["collections"]
    assert (root["collection_name"], root["tier"], root["document_count"]) == ("paragraphs", 0, 2)
    [child] = root["children"]
    assert (child["collection_name"], child["tier"], child["document_count"]) == ("sentences", 1, 3)
    assert sorted(child["document_ids"]) == sorted(second.document_ids)
    assert tree["total_documents"] == 5 and tree["max_depth"] == 2
    assert_error(client.get("/v1/objects/obj_missing/decomposition-tree"), 404)

    manual = client.post("/v1/collections/sentences/documents", json={"text": "no parents"}).json()
    none = client.get(f"/v1/collections/sentences/documents/{manual['document_id']}/lineage").json()
    assert none["lineage"] is None and none["message"]
