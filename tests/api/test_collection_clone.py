"""Clone (a new collection from another's configuration) and reconciliation (objects vs documents)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from strataflow.runtime import Runtime
from strataflow.statuses import Status
from strataflow.store.tables import Batch
from tests.collection_flows import add_object, make_bucket, run, text_collection
from tests.helpers import assert_error, wait_task

TEXT = "Cats purr softly. Dogs bark loudly. Birds sing at dawn."


def _clone(client: TestClient, identifier: str, **body: Any) -> Any:
    return client.post(f"/v1/collections/{identifier}/clone", json=body)


def _reconcile(client: TestClient, identifier: str, limit: int | None = None) -> dict[str, Any]:
    query = "" if limit is None else f"?limit={limit}"
    response = client.get(f"/v1/collections/{identifier}/reconciliation{query}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _chunks(client: TestClient, bucket_id: str) -> dict[str, Any]:
    created = text_collection(
        client,
        "chunks",
        {"type": "bucket", "bucket_ids": [bucket_id]},
        split_by="sentences",
        chunk_size=1,
        model="wordllama",
    )
    patched = client.patch("/v1/collections/chunks", json={"description": "sentences", "metadata": {"team": "search"}})
    assert patched.status_code == 200, patched.text
    return {**created, **patched.json()}


def test_clone_copies_configuration_not_documents(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    original = _chunks(client, make_bucket(client))
    run(runtime, original["collection_id"], [add_object(client, TEXT, title="T")])
    assert client.get("/v1/collections/chunks").json()["document_count"] == 3

    response = _clone(client, "chunks", collection_name="chunks_copy")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source_collection_id"] == original["collection_id"]
    clone = body["collection"]
    assert clone["collection_id"].startswith("col_") and clone["collection_id"] != original["collection_id"]
    assert clone["collection_name"] == "chunks_copy"
    for copied in ("description", "source", "feature_extractor", "input_schema", "output_schema", "vector_indexes"):
        assert clone[copied] == original[copied], copied
    assert (clone["metadata"], clone["enabled"], clone["document_count"]) == ({"team": "search"}, True, 0)
    assert clone["feature_extractor"]["parameters"]["split_by"] == "sentences"
    assert clone["feature_extractor"]["field_passthrough"][0]["source_path"] == "title"
    assert client.get("/v1/collections/chunks_copy").json()["collection_id"] == clone["collection_id"]
    assert runtime.index.count(clone["collection_id"]) == 0  # configuration only: no documents copied
    assert client.get("/v1/collections/chunks").json()["document_count"] == 3  # the source is untouched


def test_clone_overrides_replace_the_copied_fields(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    other_bucket = make_bucket(client, "other")
    _chunks(client, make_bucket(client))
    extractor = {
        "feature_extractor_name": "text_extractor",
        "version": "v1",
        "input_mappings": {"text": "content"},
        "field_passthrough": [{"source_path": "lang"}],
        "parameters": {"extractor_type": "text_extractor", "split_by": "words", "chunk_size": 2, "model": "wordllama"},
    }
    response = _clone(
        client,
        "chunks",
        collection_name="word_pairs",
        description="pairs",
        source={"type": "bucket", "bucket_ids": ["other"]},
        feature_extractor=extractor,
        enabled=False,
        metadata={"team": "lab"},
    )
    assert response.status_code == 200, response.text
    clone = response.json()["collection"]
    assert (clone["description"], clone["enabled"], clone["metadata"]) == ("pairs", False, {"team": "lab"})
    assert clone["source"] == {"type": "bucket", "bucket_ids": [other_bucket]}
    assert (
        clone["feature_extractor"]["parameters"]["split_by"],
        clone["feature_extractor"]["parameters"]["chunk_size"],
    ) == (
        "words",
        2,
    )
    assert "lang" in clone["output_schema"]["properties"] and "title" not in clone["output_schema"]["properties"]

    # A collection reading another collection clones too: its source and schemas round-trip.
    downstream = text_collection(
        client, "downstream", {"type": "collection", "collection_ids": ["chunks"]}, mapping="text", split_by="words"
    )
    copy = _clone(client, "downstream", collection_name="downstream_copy")
    assert copy.status_code == 200, copy.text
    assert copy.json()["collection"]["source"] == downstream["source"]
    assert copy.json()["collection"]["input_schema"] == downstream["input_schema"]


def test_a_refused_clone_creates_nothing(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> None:
    _chunks(client, make_bucket(client))
    tables = set(runtime.index._db.list_tables().tables)
    unknown = {"feature_extractor_name": "nope_extractor", "version": "v1"}
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"collection_name": "chunks"}, 409, "AlreadyExistsError"),  # the source's own name
        ({"collection_name": "x"}, 422, None),  # a create's name rule
        ({"collection_name": "bad_extractor", "feature_extractor": unknown}, 400, None),
        ({"collection_name": "loop", "source": {"type": "collection", "collection_id": "loop"}}, 400, None),
        ({"collection_name": "gone_bucket", "source": {"type": "bucket", "bucket_ids": ["nope"]}}, 404, None),
    ]
    for body, status, kind in cases:
        assert_error(_clone(client, "chunks", **body), status, kind)
    assert_error(_clone(client, "no_such_collection", collection_name="copy"), 404, "NotFoundError")
    assert client.post("/v1/collections/list", json={}).json()["total_count"] == 1
    assert set(runtime.index._db.list_tables().tables) == tables

    # Another namespace's collection is not found from here.
    assert (
        client.post("/v1/namespaces", json={"namespace_name": "other_ns", "feature_extractors": []}).status_code == 200
    )
    elsewhere = {"X-Namespace": "other_ns"}
    assert_error(
        client.post("/v1/collections/chunks/clone", json={"collection_name": "stolen"}, headers=elsewhere), 404
    )
    assert_error(client.get("/v1/collections/chunks/reconciliation", headers=elsewhere), 404)


def _submit(client: TestClient, object_ids: list[str]) -> tuple[str, str]:
    """The batch of these objects, submitted: its id and its task's."""
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()
    task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={})
    assert task.status_code == 200, task.text
    return str(batch["batch_id"]), str(task.json()["task_id"])


def test_reconciliation_names_the_objects_that_produced_nothing(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    bucket_id = make_bucket(client)
    chunks = _chunks(client, bucket_id)
    pairs = text_collection(
        client, "pairs", {"type": "collection", "collection_ids": ["chunks"]}, mapping="text", split_by="words"
    )
    empty = _reconcile(client, "chunks")
    assert (empty["source_object_count"], empty["delta"], empty["discrepancies"]) == (0, 0, [])

    good = add_object(client, TEXT)
    lost = add_object(client, TEXT)
    textless = client.post("/v1/buckets/docs/objects", json={"blobs": [], "metadata": {"title": "no text"}}).json()
    blob_key = client.get(f"/v1/buckets/docs/objects/{lost}").json()["blobs"][0]["properties"]["key"]
    blob_path: Path = runtime.blobs.path(blob_key)
    blob_path.unlink()  # its bytes are gone: the extractor fails on this object alone

    batch_id, task_id = _submit(client, [good, lost, textless["object_id"]])
    assert wait_task(client, task_id, timeout=60)["status"] == "COMPLETED_WITH_ERRORS"

    report = _reconcile(client, chunks["collection_id"])
    assert report["collection_id"] == chunks["collection_id"]
    assert (report["source_object_count"], report["produced_object_count"], report["document_count"]) == (3, 1, 3)
    assert (report["delta"], report["discrepancies_truncated"], report["limit"]) == (2, False, 100)
    by_id = {d["object_id"]: d for d in report["discrepancies"]}
    assert set(by_id) == {lost, textless["object_id"]}
    failed = by_id[lost]
    assert (failed["reason"], failed["bucket_id"]) == ("failed", bucket_id)
    assert "missing from storage" in failed["error"]
    assert failed["status"] and failed["age_seconds"] >= 0
    assert (by_id[textless["object_id"]]["reason"], by_id[textless["object_id"]]["error"]) == ("no_document", None)

    capped = _reconcile(client, "chunks", limit=1)
    assert (capped["delta"], len(capped["discrepancies"]), capped["discrepancies_truncated"]) == (2, 1, True)
    assert capped["discrepancies"][0]["object_id"] == min(lost, textless["object_id"])

    # Downstream, only the objects that reached it count: the one with sentences upstream.
    downstream = _reconcile(client, pairs["collection_id"])
    assert (downstream["source_object_count"], downstream["produced_object_count"], downstream["delta"]) == (1, 1, 0)
    assert downstream["document_count"] == runtime.index.count(pairs["collection_id"]) > 0
    assert downstream["discrepancies"] == []

    # While a batch holding the objects runs again (a retry), the lost ones are in flight, not failed.
    with runtime.db.session() as session:
        session.execute(update(Batch).where(Batch.batch_id == batch_id).values(status=Status.PROCESSING))
        session.commit()
    in_flight = _reconcile(client, "chunks")
    assert {d["object_id"]: d["reason"] for d in in_flight["discrepancies"]} == {
        lost: "processing",
        textless["object_id"]: "processing",
    }

    assert_error(client.get("/v1/collections/chunks/reconciliation?limit=0"), 422)
    assert_error(client.get("/v1/collections/chunks/reconciliation?limit=1001"), 422)


def test_reconciliation_leaves_out_what_source_filters_exclude(client: TestClient, namespace: dict[str, Any]) -> None:
    bucket_id = make_bucket(client)
    source = {
        "type": "bucket",
        "bucket_ids": [bucket_id],
        "source_filters": {"filters": {"field": "metadata.lang", "value": "en"}},
    }
    english = text_collection(client, "english", source, split_by="sentences", chunk_size=1, model="wordllama")
    kept = [add_object(client, TEXT, lang="en") for _ in range(2)]
    french = add_object(client, TEXT, lang="fr")
    assert wait_task(client, _submit(client, [*kept, french])[1], timeout=60)["status"] == "COMPLETED"

    report = _reconcile(client, english["collection_id"])
    assert (report["source_object_count"], report["produced_object_count"], report["delta"]) == (2, 2, 0)
    assert (report["document_count"], report["discrepancies"]) == (6, [])


def test_clone_keeps_a_narrowed_input_schema_and_checks_applications(
    client: TestClient, namespace: dict[str, Any]
) -> None:
    make_bucket(client)
    narrowed = client.post(
        "/v1/collections",
        json={
            "collection_name": "narrow",
            "source": {"type": "bucket", "bucket_ids": ["docs"]},
            "input_schema": {"properties": {"content": {"type": "text"}}},
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": "content"},
                "parameters": {"extractor_type": "text_extractor", "model": "wordllama"},
            },
        },
    )
    assert narrowed.status_code == 200, narrowed.text
    assert set(narrowed.json()["input_schema"]["properties"]) == {"content"}
    clone = _clone(client, "narrow", collection_name="narrow_copy")
    assert clone.status_code == 200, clone.text
    assert clone.json()["collection"]["input_schema"] == narrowed.json()["input_schema"]

    # Taxonomy applications are checked as on a create: an unknown taxonomy is refused.
    bad = _clone(client, "narrow", collection_name="with_taxonomy", taxonomy_applications=[{"taxonomy_id": "tax_nope"}])
    assert "Taxonomy 'tax_nope' not found" in assert_error(bad, 404, "NotFoundError")["error"]["message"]
    assert_error(client.get("/v1/collections/with_taxonomy"), 404)
