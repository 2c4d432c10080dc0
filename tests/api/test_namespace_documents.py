"""Documents addressed by id alone, across the namespace's collections (/v1/documents/...), on
SQLite and PostgreSQL: read, change, fetch many, list and batch-list, never another namespace's."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.store.pagination import MAX_CURSOR_OFFSET, encode_cursor
from tests.collection_flows import make_bucket, text_collection
from tests.helpers import assert_error

# Written in this order, alternating collections: a list ordered by creation must interleave them.
NOTES = [
    ("alpha", "Tides follow the moon", "tides", 30),
    ("beta", "Bread needs flour", "bread", 5),
    ("alpha", "Glaciers carve fjords", "glaciers", 12),
    ("beta", "Yeast makes dough rise", "yeast", 40),
    ("alpha", "Wind shapes dunes", "wind", 1),
]


def _use(client: TestClient, namespace: str) -> None:
    client.headers.update({"X-Namespace": namespace})


def _create(client: TestClient, collection: str, text: str, title: str, views: int) -> str:
    response = client.post(
        f"/v1/collections/{collection}/documents", json={"text": text, "title": title, "views": views}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["document_id"])


@pytest.fixture
def corpus(client: TestClient, namespace: dict[str, Any]) -> dict[str, Any]:
    """Two collections in `main` with interleaved documents, and one document in namespace `other`."""
    make_bucket(client)
    collections = {
        name: text_collection(client, name, {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none")[
            "collection_id"
        ]
        for name in ("alpha", "beta")
    }
    text_collection(client, "empty", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none")
    ids = [_create(client, collection, text, title, views) for collection, text, title, views in NOTES]

    assert client.post("/v1/namespaces", json={"namespace_name": "other", "feature_extractors": []}).status_code == 200
    _use(client, "other")
    make_bucket(client)
    other = text_collection(client, "alpha", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none")
    foreign = _create(client, "alpha", "Someone else's tides", "tides", 99)
    _use(client, "main")
    return {"ids": ids, "collections": collections, "foreign": foreign, "other_alpha": other["collection_id"]}


def _list(client: TestClient, body: dict[str, Any], query: str = "") -> dict[str, Any]:
    response = client.post(f"/v1/documents/list{query}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _titles(listing: dict[str, Any]) -> list[str]:
    return [d["title"] for d in listing["results"]]


def test_get_finds_a_document_in_any_collection(client: TestClient, corpus: dict[str, Any]) -> None:
    for (collection, text, title, views), document_id in zip(NOTES, corpus["ids"], strict=True):
        response = client.get(f"/v1/documents/{document_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["document_id"] == document_id and body["collection_id"] == corpus["collections"][collection]
        assert (body["text"], body["title"], body["views"]) == (text, title, views)
    # The SDK's other query parameters are accepted.
    extra = client.get(f"/v1/documents/{corpus['ids'][0]}?return_vectors=true&return_vector_names=true&expand=x")
    assert extra.status_code == 200 and extra.json()["document_id"] == corpus["ids"][0]

    missing = assert_error(client.get("/v1/documents/doc_000000000000000000000000"), 404, "NotFoundError")
    assert "doc_000000000000000000000000" in missing["error"]["message"]
    # Another namespace's document does not exist here, however its id was learned.
    assert_error(client.get(f"/v1/documents/{corpus['foreign']}"), 404, "NotFoundError")
    _use(client, "other")
    assert client.get(f"/v1/documents/{corpus['foreign']}").json()["title"] == "tides"
    assert_error(client.get(f"/v1/documents/{corpus['ids'][0]}"), 404, "NotFoundError")


def _events(client: TestClient, event_type: str) -> list[dict[str, Any]]:
    response = client.get("/v1/events", params={"event_type": event_type, "limit": 1000})
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def test_patch_and_put_by_id_change_the_document_and_record_events(client: TestClient, corpus: dict[str, Any]) -> None:
    beta_doc = corpus["ids"][1]
    patched = client.patch(f"/v1/documents/{beta_doc}", json={"title": "sourdough", "lang": "en"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["collection_id"] == corpus["collections"]["beta"]
    stored = client.get(f"/v1/collections/beta/documents/{beta_doc}").json()
    assert (stored["title"], stored["lang"], stored["text"], stored["views"]) == (
        "sourdough",
        "en",
        "Bread needs flour",
        5,
    )

    replaced = client.put(f"/v1/documents/{beta_doc}", json={"text": "Only this"})
    assert replaced.status_code == 200, replaced.text
    stored = client.get(f"/v1/documents/{beta_doc}").json()
    assert stored["text"] == "Only this" and "title" not in stored and "views" not in stored

    updates = _events(client, "document.updated")
    assert [e["resource_id"] for e in updates] == [beta_doc, beta_doc]
    assert {e["payload"]["collection_id"] for e in updates} == {corpus["collections"]["beta"]}
    assert sorted(e["payload"]["document"].get("title", "") for e in updates) == ["", "sourdough"]

    # A system field is refused and changes nothing; an unknown id or another namespace's is a 404.
    assert_error(client.patch(f"/v1/documents/{beta_doc}", json={"_internal_x": 1, "text": "no"}), 400)
    assert client.get(f"/v1/documents/{beta_doc}").json()["text"] == "Only this"
    assert_error(client.patch("/v1/documents/doc_000000000000000000000000", json={"text": "x"}), 404, "NotFoundError")
    assert_error(client.put(f"/v1/documents/{corpus['foreign']}", json={"text": "hijacked"}), 404, "NotFoundError")
    assert_error(client.patch(f"/v1/documents/{corpus['foreign']}", json={"text": "hijacked"}), 404, "NotFoundError")
    assert len(_events(client, "document.updated")) == 2
    _use(client, "other")
    assert client.get(f"/v1/documents/{corpus['foreign']}").json()["text"] == "Someone else's tides"


def test_batch_get_returns_found_documents_in_order_and_names_the_rest(
    client: TestClient, corpus: dict[str, Any]
) -> None:
    ids = corpus["ids"]
    wanted = [ids[3], "doc_missing", ids[0], corpus["foreign"], ids[3]]
    response = client.post("/v1/documents/batch-get", json={"document_ids": wanted})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [d["document_id"] for d in body["documents"]] == [ids[3], ids[0]]
    assert [d["collection_id"] for d in body["documents"]] == [
        corpus["collections"]["beta"],
        corpus["collections"]["alpha"],
    ]
    assert body["documents"][0]["title"] == "yeast"
    assert body["not_found"] == ["doc_missing", corpus["foreign"]]

    assert_error(client.post("/v1/documents/batch-get", json={"document_ids": []}), 422)
    too_many = [f"doc_{n:024x}" for n in range(1001)]
    assert_error(client.post("/v1/documents/batch-get", json={"document_ids": too_many}), 422)
    assert_error(client.post("/v1/documents/batch-get", json={}), 422)


def test_list_merges_the_collections_in_one_order(client: TestClient, corpus: dict[str, Any]) -> None:
    everything = _list(client, {"include_total": True})
    assert _titles(everything) == ["tides", "bread", "glaciers", "yeast", "wind"]  # creation order, interleaved
    assert everything["total_documents"] == 5 and everything["pagination"]["total"] == 5
    assert everything["stats"]["total_documents"] == 5 and "unknown_collection_ids" not in everything

    by_views = _list(client, {"sort": {"field": "views", "direction": "desc"}})
    assert _titles(by_views) == ["yeast", "tides", "glaciers", "bread", "wind"]
    by_title = _list(client, {"sort": {"field": "title", "direction": "asc"}})
    assert _titles(by_title) == ["bread", "glaciers", "tides", "wind", "yeast"]
    newest = _list(client, {"sort": {"field": "created_at", "direction": "desc"}})
    assert _titles(newest) == ["wind", "yeast", "glaciers", "bread", "tides"]

    # Pages in the body, in the query (page_size/page from 1) and by cursor all walk the same order.
    body_pages = [_list(client, {"limit": 2, "offset": start, "sort": {"field": "views"}}) for start in (0, 2, 4)]
    assert [t for p in body_pages for t in _titles(p)] == ["wind", "bread", "glaciers", "tides", "yeast"]
    assert body_pages[2]["pagination"]["next_cursor"] is None and body_pages[0]["pagination"]["page"] == 1
    query_page = _list(client, {"sort": {"field": "views"}}, "?page_size=2&page=2")
    assert _titles(query_page) == ["glaciers", "tides"]
    body_page = _list(client, {"sort": {"field": "views"}, "page_size": 2, "page": 3}, "?limit=1&offset=0")
    assert _titles(body_page) == ["yeast"] and body_page["pagination"]["page"] == 3
    walked, cursor = [], None
    while True:
        page = _list(client, {"limit": 2, "cursor": cursor} if cursor else {"limit": 2})
        walked += _titles(page)
        cursor = page["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert walked == _titles(everything)


def test_list_filters_search_select_and_collections(client: TestClient, corpus: dict[str, Any]) -> None:
    filtered = _list(client, {"filters": {"field": "views", "operator": "gte", "value": 12}, "include_total": True})
    assert _titles(filtered) == ["tides", "glaciers", "yeast"] and filtered["total_documents"] == 3
    assert _titles(_list(client, {"search": "RISE"})) == ["yeast"]
    picked = _list(client, {"select": ["title"], "limit": 1})
    assert picked["results"] == [
        {"document_id": corpus["ids"][0], "collection_id": corpus["collections"]["alpha"], "title": "tides"}
    ]

    beta_by_name = _list(client, {"collection_ids": ["beta"]})
    assert _titles(beta_by_name) == ["bread", "yeast"]
    by_id = _list(client, {"collection_id": corpus["collections"]["alpha"], "include_total": True})
    assert _titles(by_id) == ["tides", "glaciers", "wind"] and by_id["total_documents"] == 3
    partly = _list(client, {"collection_ids": ["beta", "nope"]})
    assert _titles(partly) == ["bread", "yeast"] and partly["unknown_collection_ids"] == ["nope"]
    assert _list(client, {"collection_ids": ["empty"], "include_total": True})["total_documents"] == 0
    assert_error(client.post("/v1/documents/list", json={"collection_ids": ["nope"]}), 404, "NotFoundError")
    # Another namespace's collection cannot be named, by id; its documents never appear here.
    assert_error(client.post("/v1/documents/list", json={"collection_ids": [corpus["other_alpha"]]}), 404)
    assert corpus["foreign"] not in {d["document_id"] for d in _list(client, {"limit": 100})["results"]}
    _use(client, "other")
    assert [d["document_id"] for d in _list(client, {"collection_ids": ["alpha"]})["results"]] == [corpus["foreign"]]


def test_list_refuses_what_it_cannot_honour(client: TestClient, corpus: dict[str, Any]) -> None:
    for body, field in (
        ({"group_by": "title"}, "group_by"),
        ({"partition": {"index": 0, "count": 2}}, "partition"),
        ({"expand": ["parent_id"]}, "expand"),
        ({"return_vector_names": True}, "return_vector_names"),
    ):
        refused = assert_error(client.post("/v1/documents/list", json=body), 400, "BadRequestError")
        assert refused["error"]["details"]["unsupported"] == [field]
    assert_error(client.post("/v1/documents/list", json={"limit": 1001}), 422)
    assert_error(client.post("/v1/documents/list?offset=10001", json={}), 422)
    assert_error(client.post("/v1/documents/list", json={"filters": {"field": "views", "operator": "nope"}}), 400)
    assert_error(client.post("/v1/documents/list", json={"cursor": "not-a-cursor"}), 400)
    beyond = encode_cursor(MAX_CURSOR_OFFSET + 1)  # no store can skip that far: once a 500
    assert_error(client.post("/v1/documents/list", json={"cursor": beyond}), 400, "BadRequestError")
    far = _list(client, {"cursor": encode_cursor(MAX_CURSOR_OFFSET)})
    assert far["results"] == [] and far["pagination"]["next_cursor"] is None


def test_list_batch_answers_each_query_and_isolates_failures(client: TestClient, corpus: dict[str, Any]) -> None:
    queries = [
        {"key": "beta", "request": {"collection_ids": ["beta"], "include_total": True}},
        {"key": "grouped", "request": {"group_by": "title"}},
        {"key": "popular", "request": {"sort": {"field": "views", "direction": "desc"}, "limit": 2}},
    ]
    response = client.post("/v1/documents/list/batch", json={"queries": queries})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["key"] for r in results] == ["beta", "grouped", "popular"]
    assert _titles(results[0]["response"]) == ["bread", "yeast"] and results[0]["response"]["total_documents"] == 2
    assert results[0]["error"] is None
    assert results[1]["response"] is None and "group_by" in results[1]["error"]
    assert _titles(results[2]["response"]) == ["yeast", "tides"]

    eleven = [{"key": f"q{n}", "request": {}} for n in range(11)]
    assert_error(client.post("/v1/documents/list/batch", json={"queries": eleven}), 422)
    assert_error(client.post("/v1/documents/list/batch", json={"queries": []}), 422)
    assert_error(client.post("/v1/documents/list/batch", json={"queries": [{"key": "", "request": {}}]}), 422)
