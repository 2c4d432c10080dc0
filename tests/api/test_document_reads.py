"""What a document read can ask for beyond the fields: chosen vectors, and partitions for parallel readers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.runtime import Runtime
from tests.collection_flows import add_object, make_bucket, run, text_collection
from tests.helpers import assert_error

TEXTS = [
    "Rivers carve valleys. Glaciers carve fjords. Wind shapes dunes. Rain fills lakes.",
    "Bread needs flour. Yeast makes it rise. Ovens bake it. Butter softens it.",
    "Stars burn hydrogen. Planets circle stars. Moons circle planets. Comets fall inward.",
]


@pytest.fixture
def sentences(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    make_bucket(client)
    collection = text_collection(
        client,
        "sentences",
        {"type": "bucket", "bucket_ids": ["docs"]},
        split_by="sentences",
        chunk_size=1,
        model="wordllama",
    )
    objects = [add_object(client, text, title=f"t{n}") for n, text in enumerate(TEXTS)]
    result = run(runtime, collection["collection_id"], objects)
    assert result.failures == []
    # Hand-written documents too, so the partitions have more than a dozen to share out.
    for n in range(40):
        created = client.post("/v1/collections/sentences/documents", json={"text": f"note {n}", "n": n})
        assert created.status_code == 200, created.text
    return collection


def _list(client: TestClient, body: dict[str, Any], query: str = "") -> dict[str, Any]:
    response = client.post(f"/v1/collections/sentences/documents/list{query}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _all_ids(client: TestClient) -> set[str]:
    return {d["document_id"] for d in _list(client, {"limit": 1000})["results"]}


def test_partitions_split_the_documents_exactly_once_and_page_by_cursor(
    client: TestClient, sentences: dict[str, Any]
) -> None:
    everything = _all_ids(client)
    assert len(everything) == 12 + 40

    seen: list[str] = []
    for index in range(4):
        counted = _list(client, {"partition": {"index": index, "count": 4}, "limit": 1}, "?include_total=true")
        total = counted["pagination"]["total"]
        page = _list(client, {"partition": {"index": index, "count": 4}, "limit": 5})
        mine = [d["document_id"] for d in page["results"]]
        while page["pagination"]["next_cursor"]:
            # The cursor alone carries its partition (and the body may repeat it).
            body = {"cursor": page["pagination"]["next_cursor"], "limit": 5}
            page = _list(client, body if index % 2 else {**body, "partition": {"index": index, "count": 4}})
            mine += [d["document_id"] for d in page["results"]]
        assert mine == sorted(mine) and len(mine) == total
        seen += mine
    assert sorted(seen) == sorted(everything)  # every document in exactly one partition
    assert len(set(seen)) == len(seen)

    # Two partitions of the same split never share, and filters narrow each one.
    two = [
        {d["document_id"] for d in _list(client, {"partition": {"index": i, "count": 2}, "limit": 100})["results"]}
        for i in range(2)
    ]
    assert two[0] and two[1] and not two[0] & two[1] and two[0] | two[1] == everything
    filtered = _list(
        client,
        {"partition": {"index": 0, "count": 2}, "filters": {"field": "n", "operator": "gte", "value": 0}, "limit": 100},
    )
    assert {d["document_id"] for d in filtered["results"]} <= two[0]
    assert all("n" in d for d in filtered["results"])

    # A document written after a reader started shows up once in its partition, and nothing repeats.
    first = _list(client, {"partition": {"index": 0, "count": 1}, "limit": 10})
    client.post("/v1/collections/sentences/documents", json={"text": "late"})
    ids = [d["document_id"] for d in first["results"]]
    cursor = first["pagination"]["next_cursor"]
    while cursor:
        page = _list(client, {"cursor": cursor, "limit": 10})
        ids += [d["document_id"] for d in page["results"]]
        cursor = page["pagination"]["next_cursor"]
    assert len(ids) == len(set(ids)) and set(ids) >= everything


def test_bad_partitions_are_refused_in_the_error_shape(client: TestClient, sentences: dict[str, Any]) -> None:
    url = "/v1/collections/sentences/documents/list"
    for partition in (
        {"index": 4, "count": 4},
        {"index": -1, "count": 4},
        {"index": 0, "count": 0},
        {"index": 0, "count": 257},
    ):
        assert_error(client.post(url, json={"partition": partition}), 422)
    sorted_ = {"partition": {"index": 0, "count": 2}, "sort": {"field": "n", "direction": "asc"}}
    assert "sort" in assert_error(client.post(url, json=sorted_), 400)["error"]["message"]
    grouped = {"partition": {"index": 0, "count": 2}, "group_by": "n"}
    assert_error(client.post(url, json=grouped), 400)

    cursor = _list(client, {"partition": {"index": 1, "count": 3}, "limit": 2})["pagination"]["next_cursor"]
    assert cursor
    other = {"partition": {"index": 0, "count": 3}, "cursor": cursor}
    assert "another partition" in assert_error(client.post(url, json=other), 400)["error"]["message"]
    assert_error(client.post(url, json={"cursor": "eyJwIjogWzAsIDJdfQ"}), 400)  # {"p": [0, 2]} without a key


def test_vector_names_list_or_return_the_chosen_vectors(client: TestClient, sentences: dict[str, Any]) -> None:
    [definition] = sentences["vector_indexes"]
    storage, output = definition["index"]["name"], definition["name"]
    dimensions = definition["index"]["dimensions"]
    extracted = {"filters": {"field": "_internal.lineage.source_type", "operator": "eq", "value": "bucket"}}

    names_only = _list(client, {**extracted, "return_vector_names": True, "limit": 3})["results"]
    assert names_only and all(d["_vectors"] == [storage] and storage not in d for d in names_only)
    assert all(d["vector_hydration_incomplete"] is False for d in names_only)

    for name in (storage, output):  # storage and output names both name it
        chosen = _list(client, {**extracted, "return_vector_names": [name], "limit": 3})["results"]
        assert all(len(d[storage]) == dimensions and d["_vectors"] == [storage] for d in chosen)

    # Asked-for vectors survive a select; nothing asked, nothing shown.
    selected = _list(client, {**extracted, "return_vectors": True, "select": ["text"], "limit": 2})["results"]
    assert all(set(d) >= {"text", storage} and len(d[storage]) == dimensions for d in selected)
    plain = _list(client, {**extracted, "limit": 2})["results"]
    assert all(storage not in d and "_vectors" not in d and "vector_hydration_incomplete" not in d for d in plain)
    # A hand-written document holds no vector: it lists none.
    notes = _list(client, {"filters": {"field": "n", "operator": "eq", "value": 3}, "return_vector_names": True})
    assert [d["_vectors"] for d in notes["results"]] == [[]]

    # The single-document read takes the query string's spelling: true, or names comma-separated.
    doc_id = names_only[0]["document_id"]
    url = f"/v1/collections/sentences/documents/{doc_id}"
    listed = client.get(url, params={"return_vector_names": "true"}).json()
    assert listed["_vectors"] == [storage] and storage not in listed
    fetched = client.get(url, params={"return_vector_names": f"{output},{storage}"}).json()
    assert len(fetched[storage]) == dimensions
    # The namespace-wide read by id alone takes the same.
    by_id = client.get(f"/v1/documents/{doc_id}", params={"return_vector_names": output}).json()
    assert by_id["_vectors"] == [storage] and by_id[storage] == fetched[storage]

    unknown = assert_error(
        client.post("/v1/collections/sentences/documents/list", json={"return_vector_names": ["nope"]}), 400
    )
    assert "nope" in unknown["error"]["message"]
    assert_error(client.get(url, params={"return_vector_names": "nope,other"}), 400)


def test_page_size_and_page_in_the_body_and_group_by_as_an_object(
    client: TestClient, sentences: dict[str, Any]
) -> None:
    ordered = {"sort": {"field": "n", "direction": "asc"}, "filters": {"field": "n", "operator": "gte", "value": 0}}
    second = _list(client, {**ordered, "page_size": 5, "page": 2})
    assert [d["n"] for d in second["results"]] == [5, 6, 7, 8, 9]
    assert second["pagination"]["page"] == 2 and second["pagination"]["page_size"] == 5
    # Counted only when asked: never the page size.
    assert second["total_documents"] is None and second["stats"]["total_documents"] is None
    counted = _list(client, {**ordered, "page_size": 5, "include_total": True})
    assert counted["total_documents"] == counted["stats"]["total_documents"] == 40
    grouped = _list(client, {"group_by": {"field": "_internal.lineage.root_object_id"}, "limit": 10})
    assert grouped["group_by_field"] == "_internal.lineage.root_object_id"
    assert sorted(g["count"] for g in grouped["groups"]) == [4, 4, 4, 40]
