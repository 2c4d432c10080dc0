"""Building blocks for collection tests: a text bucket, objects, collections, and running them."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from strataflow.engine.tiers.collection_run import RunContext
from strataflow.engine.tiers.overlap import run_collection
from strataflow.engine.tiers.records import load_document_records, load_object_records
from strataflow.engine.tiers.results import CollectionRunResult
from strataflow.runtime import Runtime
from strataflow.services.collections.sources import upstream_ids
from strataflow.store.tables import Collection

TEXT_SCHEMA = {
    "properties": {
        "content": {"type": "text"},
        "title": {"type": "string"},
        "views": {"type": "integer"},
        "lang": {"type": "string"},
    }
}


def make_bucket(client: TestClient, name: str = "docs") -> str:
    response = client.post("/v1/buckets", json={"bucket_name": name, "bucket_schema": TEXT_SCHEMA})
    assert response.status_code == 200, response.text
    return str(response.json()["bucket_id"])


def add_object(client: TestClient, text: str, bucket: str = "docs", **metadata: Any) -> str:
    response = client.post(
        f"/v1/buckets/{bucket}/objects",
        json={"blobs": [{"property": "content", "type": "text", "data": text}], "metadata": metadata},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["object_id"])


def text_collection(
    client: TestClient,
    name: str,
    source: dict[str, Any],
    *,
    mapping: str = "content",
    passthrough: tuple[str, ...] = ("title",),
    **parameters: Any,
) -> dict[str, Any]:
    response = client.post(
        "/v1/collections",
        json={
            "collection_name": name,
            "source": source,
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": mapping},
                "field_passthrough": [{"source_path": p} for p in passthrough],
                "parameters": {"extractor_type": "text_extractor", **parameters},
            },
        },
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def run(runtime: Runtime, collection_id: str, source_ids: list[str] | None = None) -> CollectionRunResult:
    """Run a collection synchronously over objects (bucket source) or upstream documents (all by default)."""
    with runtime.db.read_session() as session:
        collection = session.get(Collection, collection_id)
        assert collection is not None
        if collection.source["type"] == "bucket":
            records = load_object_records(session, collection.namespace_id, source_ids or [])
        else:
            records = [
                r
                for upstream in upstream_ids(collection)
                for r in load_document_records(runtime.index, upstream, source_ids)
            ]
    context = RunContext.from_settings(runtime.blobs, runtime.index, runtime.settings)
    return run_collection(context, collection, records)
