"""The same flow on both databases: filters on JSON metadata, stats, async delete."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import wait_task

SCHEMA = {"properties": {"content": {"type": "text"}, "title": {"type": "string"}, "views": {"type": "integer"}}}


def test_metadata_filters_and_delete(client: TestClient, namespace: dict[str, Any]) -> None:
    assert client.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": SCHEMA}).status_code == 200
    for i in range(5):
        r = client.post(
            "/v1/buckets/docs/objects",
            json={
                "blobs": [{"property": "content", "type": "text", "data": f"text {i}"}],
                "metadata": {"title": f"Doc {i}", "views": i * 10},
            },
        )
        assert r.status_code == 200, r.text
    r = client.post(
        "/v1/buckets/docs/objects/list",
        json={
            "filters": {"AND": [{"field": "metadata.views", "operator": "gte", "value": 20}]},
            "sort": {"field": "metadata.views", "direction": "desc"},
        },
    )
    assert r.status_code == 200, r.text
    assert [o["metadata"]["views"] for o in r.json()["results"]] == [40, 30, 20]
    task = client.delete("/v1/buckets/docs").json()
    assert wait_task(client, task["task_id"])["status"] == "COMPLETED"
    assert client.get("/v1/buckets/docs").status_code == 404
