"""Document tools over the API: count, distinct values, ancestors, descendants and media download."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from strataflow.index.records import StoredDocument, timestamp
from strataflow.runtime import Runtime
from strataflow.store.tables import BucketObject, DocumentFailure
from tests.collection_flows import add_object, make_bucket, text_collection
from tests.helpers import assert_error


@pytest.fixture
def tiers(client: TestClient, namespace: dict[str, Any]) -> dict[str, str]:
    """Three collections, each reading the one before: paragraphs ← sentences ← words (ids by name)."""
    make_bucket(client)
    paragraphs = text_collection(client, "paragraphs", {"type": "bucket", "bucket_ids": ["docs"]})
    sentences = text_collection(
        client, "sentences", {"type": "collection", "collection_id": "paragraphs"}, mapping="text", passthrough=()
    )
    words = text_collection(
        client, "words", {"type": "collection", "collection_id": "sentences"}, mapping="text", passthrough=()
    )
    return {c["collection_name"]: c["collection_id"] for c in (paragraphs, sentences, words)}


def create(client: TestClient, collection: str, **body: Any) -> str:
    response = client.post(f"/v1/collections/{collection}/documents", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["document_id"])


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [d["document_id"] for d in response.json()]


def other_namespace(client: TestClient) -> None:
    """Switch the client to a second namespace of the same organisation."""
    response = client.post("/v1/namespaces", json={"namespace_name": "other", "feature_extractors": []})
    assert response.status_code == 200, response.text
    client.headers.update({"X-Namespace": "other"})


def test_count_and_distinct_values(client: TestClient, tiers: dict[str, str]) -> None:
    counted = client.get("/v1/collections/paragraphs/documents/count")
    assert counted.status_code == 200, counted.text
    assert counted.json() == {"collection_id": tiers["paragraphs"], "count": 0}

    rows = [("Sea", 3, "en"), ("Sea", 3, "fr"), ("Sky", 7, "en"), ("Sea", 1, "en"), (None, 2, "en")]
    for title, views, lang in rows:
        create(client, "paragraphs", title=title, views=views, lang=lang, source_object_id=f"obj_{lang}")
    assert client.get("/v1/collections/paragraphs/documents/count").json()["count"] == 5

    def distinct(body: dict[str, Any]) -> dict[str, Any]:
        response = client.post("/v1/collections/paragraphs/documents/distinct", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    titles = distinct({"field": "title"})  # the document with a null title is left out
    assert titles["field"] == "title" and titles["total_distinct"] == 2
    assert titles["values"] == [{"value": "Sea", "count": 3}, {"value": "Sky", "count": 1}]
    assert not titles["query_info"]
    views = distinct({"field": "views", "filters": {"field": "lang", "operator": "eq", "value": "en"}})
    assert views["values"] == [
        {"value": 1, "count": 1},
        {"value": 2, "count": 1},
        {"value": 3, "count": 1},
        {"value": 7, "count": 1},
    ]
    assert distinct({"field": "lang", "limit": 1})["values"] == [{"value": "en", "count": 4}]
    column = distinct({"field": "_internal.lineage.source_object_id"})
    assert column["values"] == [{"value": "obj_en", "count": 4}, {"value": "obj_fr", "count": 1}]
    assert distinct({"field": "missing.field"})["values"] == []
    create(client, "paragraphs", code="3", tags=["a", "b"])
    create(client, "paragraphs", code=3, tags=["a", "b"])
    codes = distinct({"field": "code"})["values"]  # a string "3" and the number 3 are different values
    assert sorted((type(v["value"]).__name__, v["count"]) for v in codes) == [("int", 1), ("str", 1)]
    assert distinct({"field": "tags"})["values"] == [{"value": ["a", "b"], "count": 2}]

    assert_error(client.post("/v1/collections/paragraphs/documents/distinct", json={"field": "a..b"}), 400)
    assert_error(client.post("/v1/collections/paragraphs/documents/distinct", json={"field": "t", "limit": 0}), 422)
    assert_error(client.post("/v1/collections/paragraphs/documents/distinct", json={"limit": 5}), 422)
    assert_error(client.get("/v1/collections/nope/documents/count"), 404)

    other_namespace(client)
    assert_error(client.get(f"/v1/collections/{tiers['paragraphs']}/documents/count"), 404)
    assert_error(client.post(f"/v1/collections/{tiers['paragraphs']}/documents/distinct", json={"field": "t"}), 404)


def test_ancestors_and_descendants(client: TestClient, tiers: dict[str, str]) -> None:
    obj = add_object(client, "Waves. Foam.")
    root = {"root_object_id": obj, "root_bucket_id": "docs"}
    paragraph = create(client, "paragraphs", text="Waves. Foam.", source_type="bucket", source_object_id=obj, **root)

    def child(collection: str, parent: str, parent_collection: str | None, text: str) -> str:
        lineage = {"source_type": "collection", "source_document_id": parent, **root}
        if parent_collection:
            lineage["source_collection_id"] = tiers[parent_collection]
        return create(client, collection, text=text, **lineage)

    waves = child("sentences", paragraph, "paragraphs", "Waves.")
    foam = child("sentences", paragraph, "paragraphs", "Foam.")
    wave_word = child("words", waves, "sentences", "waves")
    # No source collection named (a hand-made document): the parent is found upstream.
    foam_word = child("words", foam, None, "foam")
    unrelated = create(client, "words", text="alone")

    base = "/v1/collections/{}/documents/{}/{}"
    assert ids(client.get(base.format("words", wave_word, "ancestors"))) == [paragraph, waves]
    assert ids(client.get(base.format("words", foam_word, "ancestors"))) == [paragraph, foam]
    assert ids(client.get(base.format("sentences", waves, "ancestors"))) == [paragraph]
    assert ids(client.get(base.format("paragraphs", paragraph, "ancestors"))) == []
    assert ids(client.get(base.format("words", unrelated, "ancestors"))) == []
    ancestors = client.get(base.format(tiers["words"], wave_word, "ancestors")).json()
    assert [(d["collection_id"], d["text"]) for d in ancestors] == [
        (tiers["paragraphs"], "Waves. Foam."),
        (tiers["sentences"], "Waves."),
    ]

    assert ids(client.get(base.format("paragraphs", paragraph, "descendants"))) == [waves, foam]
    deep = ids(client.get(base.format("paragraphs", paragraph, "descendants"), params={"depth": 2}))
    assert deep == [waves, foam, wave_word, foam_word]
    assert ids(client.get(base.format("sentences", foam, "descendants"))) == [foam_word]
    assert ids(client.get(base.format("words", wave_word, "descendants"))) == []
    assert_error(client.get(base.format("paragraphs", paragraph, "descendants"), params={"depth": 0}), 422)

    assert_error(client.get(base.format("words", "doc_missing", "ancestors")), 404)
    assert_error(client.get(base.format("words", "doc_missing", "descendants")), 404)
    # The document exists, but in another collection than the path says.
    assert_error(client.get(base.format("sentences", wave_word, "ancestors")), 404)
    other_namespace(client)
    assert_error(client.get(base.format(tiers["words"], wave_word, "ancestors")), 404)
    assert_error(client.get(base.format(tiers["paragraphs"], paragraph, "descendants")), 404)


def _fetch(client: TestClient, url: str) -> bytes:
    """GET a presigned URL through the app, without the API key: the signature is the credential."""
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}", headers={"Authorization": ""})
    assert response.status_code == 200, response.text
    return response.content


def test_download_media(client: TestClient, tiers: dict[str, str], runtime: Runtime) -> None:
    obj = add_object(client, "The whole source text.")
    from_object = create(client, "sentences", text="source", source_object_id=obj, root_object_id=obj)
    answer = client.get(f"/v1/collections/sentences/documents/{from_object}/download")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["cached"], body["start_time"], body["end_time"], body["source"]) == (True, 0.0, 0.0, "source_object")
    assert _fetch(client, body["download_url"]) == b"The whole source text."

    # A document with a file of its own (a clip cut from the source) serves that file and its range.
    key = f"{tiers['sentences']}/clip.mp4"
    runtime.blobs.put_bytes(key, b"clip bytes", "video/mp4")
    now = timestamp()
    internal = {
        "lineage": {"root_object_id": obj, "source_object_id": obj},
        "document_blobs": [{"field": "clip", "key": key, "type": "video", "role": "segment"}],
    }
    clip = StoredDocument("doc_clip", tiers["sentences"], {"start_time": 1.5, "end_time": 4}, internal, {}, now, now)
    runtime.index.upsert(tiers["sentences"], [clip])
    body = client.get("/v1/collections/sentences/documents/doc_clip/download").json()
    assert (body["start_time"], body["end_time"], body["source"]) == (1.5, 4.0, "document_blob")
    assert _fetch(client, body["download_url"]) == b"clip bytes"

    no_media = create(client, "sentences", text="typed by hand")
    assert_error(client.get(f"/v1/collections/sentences/documents/{no_media}/download"), 404)
    assert_error(client.get("/v1/collections/sentences/documents/doc_missing/download"), 404)
    other_namespace(client)
    assert_error(client.get(f"/v1/collections/{tiers['sentences']}/documents/doc_clip/download"), 404)


def test_diagnostics(client: TestClient, tiers: dict[str, str], runtime: Runtime) -> None:
    obj = add_object(client, "Gulls.")
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": [obj]})
    assert batch.status_code == 200, batch.text
    with runtime.db.session() as session:
        row = session.get(BucketObject, obj)
        assert row is not None
        row.error = "decoder gave up"
        session.add(
            DocumentFailure(
                batch_id=batch.json()["batch_id"],
                tier_num=0,
                collection_id=tiers["paragraphs"],
                row_id=obj,
                root_object_id=obj,
                error_type="validation",
                message="text is empty",
            )
        )
        session.commit()
    chain = [{"collection_id": tiers["paragraphs"], "document_id": "doc_x", "timestamp": "2026-01-01T00:00:00Z"}]
    doc = create(client, "paragraphs", text="Gulls.", source_object_id=obj, root_object_id=obj, lineage_chain=chain)
    client.patch(f"/v1/collections/paragraphs/documents/{doc}", json={"reviewed": True})

    answer = client.get(f"/v1/collections/paragraphs/documents/{doc}/diagnostics")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["document_id"], body["collection_id"], body["source_object_id"]) == (doc, tiers["paragraphs"], obj)
    visibility = body["visibility_reason"]
    assert visibility["searchable"] is False and "all_minilm_l6_v2" in visibility["reason"]
    failures = body["recent_failures"]["failures"]
    assert [(f["source"], f["error"]) for f in failures] == [
        ("object", "decoder gave up"),
        ("document_failures", "text is empty"),
    ]
    assert failures[1]["status"] == "FAILED" and failures[1]["collection_id"] == tiers["paragraphs"]
    history = body["diagnostic_history"]["entries"]
    assert [e["source"] for e in history] == ["lineage.chain", "ingestion_status", "updated_at"]
    assert history[0]["timestamp"] == "2026-01-01T00:00:00Z"
    assert history[1]["detail"]["ingestion_status"] == "COMPLETED"

    features = [{"feature_extractor_id": "text_extractor_v1", "vectors": [0.1] * 384}]
    embedded = create(client, "paragraphs", text="with a vector", features=features)
    seen = client.get(f"/v1/collections/paragraphs/documents/{embedded}/diagnostics").json()
    assert seen["visibility_reason"]["searchable"] is True

    plain = create(client, "paragraphs", text="no object")
    quiet = client.get(f"/v1/collections/paragraphs/documents/{plain}/diagnostics").json()
    assert quiet["source_object_id"] is None and quiet["recent_failures"]["failures"] == []
    assert "no source object" in quiet["recent_failures"]["reason"]
    assert_error(client.get("/v1/collections/paragraphs/documents/doc_missing/diagnostics"), 404)
    other_namespace(client)
    assert_error(client.get(f"/v1/collections/{tiers['paragraphs']}/documents/{doc}/diagnostics"), 404)


def test_schema_validate_is_a_dry_run(client: TestClient, tiers: dict[str, str]) -> None:
    url = "/v1/collections/paragraphs/documents/schema/validate"
    vector = "text_extractor_v1_all_minilm_l6_v2"
    good = client.post(url, json={"text": "Fine.", "chunk_index": 2, "title": "T", vector: [0.0] * 384})
    assert good.status_code == 200, good.text
    assert good.json()["valid"] is True and good.json()["violations"] == [] and good.json()["warnings"] == []

    bad = client.post(
        url,
        json={
            "title": 5,
            "chunk_index": "two",
            "_secret": 1,
            "mood": "calm",
            vector: [0.0] * 3,
            "_internal": {"echoed": True},
        },
    ).json()
    assert bad["valid"] is False and bad["collection_id"] == tiers["paragraphs"]
    assert {v["field"]: v["message"] for v in bad["violations"]} == {
        "title": "Field 'title' must be of type string",
        "chunk_index": "Field 'chunk_index' must be of type integer",
        "_secret": "Cannot write system field '_secret'",
        vector: f"Vector '{vector}' has 3 dimensions; its index has 384",
    }
    assert [w["field"] for w in bad["warnings"]] == ["mood"]
    assert client.get("/v1/collections/paragraphs/documents/count").json()["count"] == 0  # nothing written
    assert_error(client.post("/v1/collections/nope/documents/schema/validate", json={}), 404)


def test_expand_resolves_lineage_and_references_inline(client: TestClient, tiers: dict[str, str]) -> None:
    obj = add_object(client, "Waves. Foam.")
    root = {"root_object_id": obj, "root_bucket_id": "docs"}
    paragraph = create(client, "paragraphs", text="Waves. Foam.", source_type="bucket", source_object_id=obj, **root)
    lineage = {"source_type": "collection", "source_collection_id": tiers["paragraphs"], **root}
    waves = create(client, "sentences", text="Waves.", source_document_id=paragraph, **lineage)
    foam = create(client, "sentences", text="Foam.", source_document_id=paragraph, **lineage)
    word = create(
        client,
        "words",
        text="waves",
        source_type="collection",
        source_collection_id=tiers["sentences"],
        source_document_id=waves,
        related={"best": foam},
        see_also=[paragraph, "doc_gone", foam],
        **root,
    )

    got = client.get(
        f"/v1/collections/words/documents/{word}",
        params={"expand": "parent,root_object,ancestors,children,related.best,see_also"},
    )
    assert got.status_code == 200, got.text
    expanded = got.json()["_expanded"]
    assert expanded["parent"]["document_id"] == waves and expanded["parent"]["text"] == "Waves."
    assert expanded["root_object"]["object_id"] == obj and expanded["root_object"]["bucket_id"]
    assert [d["document_id"] for d in expanded["ancestors"]] == [paragraph, waves]
    assert expanded["children"] == []
    assert expanded["related.best"]["document_id"] == foam
    # A list keeps its order; an id that names nothing is null; one level deep only.
    assert [d and d["document_id"] for d in expanded["see_also"]] == [paragraph, None, foam]
    assert all("_expanded" not in d for d in expanded["see_also"] if d)

    listed = client.post(
        "/v1/collections/sentences/documents/list",
        json={"expand": ["parent", "children"], "sort": {"field": "text", "direction": "asc"}},
    )
    assert listed.status_code == 200, listed.text
    rows = listed.json()["results"]
    assert [r["text"] for r in rows] == ["Foam.", "Waves."]
    assert [r["_expanded"]["parent"]["document_id"] for r in rows] == [paragraph, paragraph]
    assert [[c["document_id"] for c in r["_expanded"]["children"]] for r in rows] == [[], [word]]
    by_id = client.get(f"/v1/documents/{word}", params={"expand": "parent"}).json()  # the namespace-wide read
    assert by_id["_expanded"]["parent"]["document_id"] == waves
    plain = client.get(f"/v1/collections/words/documents/{word}").json()
    assert "_expanded" not in plain

    # Bounded: more than 50 distinct references in one request is a 400, and nothing changes.
    many = create(client, "words", text="many", refs=[f"doc_{n:04d}" for n in range(51)])
    too_many = client.get(f"/v1/collections/words/documents/{many}", params={"expand": "refs"})
    assert "at most 50" in assert_error(too_many, 400)["error"]["message"]
    assert_error(client.get(f"/v1/collections/words/documents/{word}", params={"expand": "a..b"}), 400)
    assert client.get("/v1/collections/words/documents/count").json()["count"] == 2
