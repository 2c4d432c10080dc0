"""Deletes mean deleted, and running batches stay correct (issue 14, item 7).

- Deleting an object removes its documents, and their descendants in downstream
  collections, from every collection: lists, document reads and retriever searches.
- A tier writes nothing for an object deleted before its write, and cleans up at once
  after a delete that lands during it.
- A collection a running batch uses cannot be deleted (409) until the batch finishes.
- A tier that crashes says so plainly: no traceback, no server path in any API field.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from strataflow.app import create_app
from strataflow.engine.tiers.collection_run import RunContext
from strataflow.engine.tiers.overlap import run_collection
from strataflow.engine.tiers.records import load_object_records
from strataflow.runtime import Runtime
from strataflow.services.buckets.documents import OBJECT_DELETED, live_roots_in
from strataflow.store.tables import BatchTier, Collection
from tests.collection_flows import add_object, make_bucket, run, text_collection
from tests.conftest import ADMIN_KEY
from tests.helpers import assert_error

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

TEXTS = {
    "keep": "Salmon swim upstream to spawn in the rivers where they hatched.",
    "drop": "The Apollo 11 mission landed the first humans on the Moon in 1969.",
}


@pytest.fixture
def quiet_client(runtime: Runtime) -> Iterator[TestClient]:
    """The API without its scheduler: a test runs tiers itself (`runtime.scheduler.run_pending()`)."""
    with TestClient(create_app(runtime=runtime, run_background=False), raise_server_exceptions=False) as client:
        client.headers.update({"Authorization": f"Bearer {ADMIN_KEY}"})
        assert client.post("/v1/namespaces", json={"namespace_name": "main"}).status_code == 200
        client.headers.update({"X-Namespace": "main"})
        yield client


def _passthrough(client: TestClient, name: str, source_collection_id: str) -> str:
    response = client.post(
        "/v1/collections",
        json={
            "collection_name": name,
            "source": {"type": "collection", "collection_ids": [source_collection_id]},
            "feature_extractor": {
                "feature_extractor_name": "passthrough_extractor",
                "version": "v1",
                "parameters": {"extractor_type": "passthrough_extractor"},
            },
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["collection_id"])


def _roots(client: TestClient, collection_id: str) -> list[str]:
    listed = client.post(f"/v1/collections/{collection_id}/documents/list?limit=100", json={})
    assert listed.status_code == 200, listed.text
    return sorted(d["_internal"]["lineage"]["root_object_id"] for d in listed.json()["results"])


def _setup(client: TestClient) -> tuple[dict[str, str], str]:
    make_bucket(client)
    chunks = text_collection(
        client, "chunks", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none", model="minilm", passthrough=()
    )
    return {name: add_object(client, text) for name, text in TEXTS.items()}, str(chunks["collection_id"])


def test_deleting_an_object_removes_its_documents_and_descendants_everywhere(
    quiet_client: TestClient, runtime: Runtime
) -> None:
    client = quiet_client
    ids, chunks = _setup(client)
    copies = _passthrough(client, "copies", chunks)
    assert run(runtime, chunks, list(ids.values())).documents_written == 2
    assert run(runtime, copies).documents_written == 2
    dropped = client.post(f"/v1/collections/{chunks}/documents/list", json={}).json()["results"]
    dropped_doc = next(d["document_id"] for d in dropped if d["_internal"]["lineage"]["root_object_id"] == ids["drop"])
    feature = client.get(f"/v1/collections/{chunks}/features").json()["features"][0]["feature_uri"]

    assert client.delete(f"/v1/buckets/docs/objects/{ids['drop']}").status_code == 204

    assert _roots(client, chunks) == _roots(client, copies) == [ids["keep"]]
    assert client.get(f"/v1/collections/{chunks}/documents/{dropped_doc}").status_code == 404
    assert runtime.index.count(chunks) == runtime.index.count(copies) == 1
    search = client.post(
        "/v1/retrievers/execute",
        json={
            "collection_identifiers": ["chunks", "copies"],
            "input_schema": {"query": {"type": "text", "required": True}},
            "inputs": {"query": "the first humans on the Moon"},
            "stages": [
                {
                    "stage_name": "search",
                    "stage_type": "filter",
                    "config": {
                        "stage_id": "feature_search",
                        "parameters": {
                            "searches": [{"feature_uri": feature, "query": "{{INPUT.query}}", "top_k": 10}],
                            "final_top_k": 10,
                        },
                    },
                }
            ],
        },
    )
    assert search.status_code == 200, search.text
    found = search.json()["documents"]
    assert found and {d["_internal"]["lineage"]["root_object_id"] for d in found} == {ids["keep"]}


def _records(runtime: Runtime, object_ids: list[str]) -> tuple[Collection, list[Any]]:
    with runtime.db.read_session() as session:
        collection = session.scalars(select(Collection).where(Collection.collection_name == "chunks")).one()
        return collection, load_object_records(session, collection.namespace_id, object_ids)


def test_a_tier_writes_nothing_for_an_object_deleted_before_the_write(
    quiet_client: TestClient, runtime: Runtime
) -> None:
    client = quiet_client
    ids, chunks = _setup(client)
    collection, records = _records(runtime, list(ids.values()))
    asked = live_roots_in(runtime.db)
    answers: list[set[str]] = []

    def delete_right_before_the_check(object_ids: set[str]) -> set[str]:
        if not answers:  # extraction is done, the documents are built: the delete lands now
            assert client.delete(f"/v1/buckets/docs/objects/{ids['drop']}").status_code == 204
        answers.append(asked(object_ids))
        return answers[-1]

    context = RunContext.from_settings(
        runtime.blobs, runtime.index, runtime.settings, live_roots=delete_right_before_the_check
    )
    result = run_collection(context, collection, records)
    assert answers[0] == {ids["keep"]}
    assert _roots(client, chunks) == [ids["keep"]] and result.documents_written == 1
    assert [(f.source_id, f.error_type, f.message) for f in result.failures] == [
        (ids["drop"], "validation", OBJECT_DELETED)
    ]


def test_a_delete_that_lands_during_the_write_is_cleaned_up(quiet_client: TestClient, runtime: Runtime) -> None:
    client = quiet_client
    ids, chunks = _setup(client)
    collection, records = _records(runtime, list(ids.values()))
    asked = live_roots_in(runtime.db)
    answers: list[set[str]] = []

    def delete_right_after_the_check(object_ids: set[str]) -> set[str]:
        alive = asked(object_ids)
        if not answers:  # the check passed for both; now the delete lands before the write
            assert client.delete(f"/v1/buckets/docs/objects/{ids['drop']}").status_code == 204
        answers.append(alive)
        return alive

    context = RunContext.from_settings(
        runtime.blobs, runtime.index, runtime.settings, live_roots=delete_right_after_the_check
    )
    result = run_collection(context, collection, records)
    assert answers[0] == set(ids.values()) and answers[1] == {ids["keep"]}  # asked before and after the write
    assert _roots(client, chunks) == [ids["keep"]] and runtime.index.count(chunks) == 1
    assert [(f.source_id, f.error_type) for f in result.failures] == [(ids["drop"], "validation")]
    assert result.documents_written == 1


def test_a_collection_a_running_batch_uses_is_not_deleted(quiet_client: TestClient, runtime: Runtime) -> None:
    client = quiet_client
    ids, chunks = _setup(client)
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": list(ids.values())}).json()
    assert client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).status_code == 200

    refused = assert_error(client.delete(f"/v1/collections/{chunks}"), 409, "ConflictError")
    assert batch["batch_id"] in str(refused)
    assert client.get(f"/v1/collections/{chunks}").status_code == 200  # nothing changed

    runtime.scheduler.run_pending()  # the batch finishes; then the delete goes through
    assert client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}").json()["status"] == "COMPLETED"
    deleted = client.delete(f"/v1/collections/{chunks}")
    assert deleted.status_code == 200 and deleted.json()["documents_deleted"] == 2


def test_a_tier_that_crashes_leaks_no_traceback_or_path(quiet_client: TestClient, runtime: Runtime) -> None:
    client = quiet_client
    ids, _ = _setup(client)
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": list(ids.values())}).json()
    task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
    with runtime.db.read_session() as session:
        key = session.get(BatchTier, (batch["batch_id"], 0)).manifest_key  # type: ignore[union-attr]
    runtime.blobs.put_bytes(key, b"this is no parquet file")  # the tier cannot read its own manifest
    runtime.scheduler.run_pending()

    done = client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}").json()
    task_view = client.get(f"/v1/tasks/{task['task_id']}").json()
    assert done["status"] == "FAILED" and done["error"], done
    fields = [done["error"], str(done.get("tier_tasks")), str(task_view)]
    for text in fields:
        assert "Traceback" not in text and 'File "' not in text and str(runtime.settings.data_dir) not in text, text
        assert "/src/strataflow/" not in text and "site-packages" not in text, text
    assert "internal error" in done["error"] and "server log" in done["error"]
