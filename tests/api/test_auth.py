"""The auth matrix: every route without a key, with a revoked key, with another org's key."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.runtime import JOB_HANDLERS
from strataflow.services.tenancy.auth import create_organization, issue_key, revoke_key
from strataflow.services.tenancy.tasks import create_task
from strataflow.statuses import TaskType
from strataflow.store.tables import Organization
from tests.helpers import assert_error

PUBLIC = {
    ("GET", "/v1/health"),
    ("GET", "/v1/health/liveness"),
    ("GET", "/v1/collections/features/extractors"),
    ("GET", "/v1/collections/features/extractors/{feature_extractor_id}"),
    ("GET", "/v1/retrievers/stages"),  # the stage catalogue: the SDK reads it without a key
}
# Routes that need a key but hold nothing of any tenant's (an index of links; scoring what the caller sends):
# every org gets the same answer, so "another org sees nothing" has nothing to check there.
UNSCOPED = {("GET", "/v1/evaluations"), ("POST", "/v1/evaluations/score")}


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every operation in the app's own OpenAPI document (presigned blob URLs carry their own auth)."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), path)
        for path, ops in paths.items()
        for method in ops
        if path.startswith("/v1/") and not path.startswith("/v1/blobs/")
    ]


def _fill(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path


@pytest.fixture
def world(client: TestClient, namespace: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Org A owns a namespace, bucket and object; org B has a key and a namespace of its own."""
    client.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": {"properties": {"c": {"type": "text"}}}})
    obj = client.post("/v1/buckets/docs/objects", json={"blobs": [{"property": "c", "type": "text", "data": "x"}]})
    task = client.post("/v1/namespaces", json={"namespace_name": "spare"})
    assert task.status_code == 200
    with runtime.db.transaction() as session:
        other = create_organization(session, "other-org")
        other_key = issue_key(session, other, "k").plaintext
        revoked = issue_key(session, other, "old")
        revoke_key(session, revoked.key_id)
        # A task no job handler runs (so it stays PENDING while the test looks at it).
        unhandled = next(t for t in TaskType if t not in JOB_HANDLERS)
        pending = create_task(session, namespace_org_id(runtime), unhandled).task_id
    b_client = {"Authorization": f"Bearer {other_key}"}
    client.post("/v1/namespaces", json={"namespace_name": "b-space"}, headers=b_client)
    ids = {
        "namespace_identifier": namespace["namespace_id"],
        "namespace_id": namespace["namespace_id"],
        "bucket_identifier": "docs",
        "object_identifier": obj.json()["object_id"],
        "task_id": pending,
        "feature_extractor_id": "text_extractor_v1",
        "extractor_id": "text_extractor_v1",
    }
    return {"ids": ids, "other_key": other_key, "revoked_key": revoked.plaintext}


def test_every_private_route_needs_a_valid_key(client: TestClient, world: dict[str, Any]) -> None:
    checked = 0
    for method, path in _routes(client):
        if (method, path) in PUBLIC:
            continue
        url = _fill(path, world["ids"])
        for headers in (
            {"Authorization": ""},
            {"Authorization": f"Bearer {world['revoked_key']}"},
            {"Authorization": "Basic abc"},
            {"Authorization": "Bearer sk_wrong"},
        ):
            response = client.request(method, url, headers=headers, json={})
            assert_error(response, 401, "UnauthorizedError")
        checked += 1
    assert checked >= 20


def test_public_routes_answer_without_a_key(client: TestClient) -> None:
    bare = {"Authorization": ""}
    assert client.get("/v1/health", headers=bare).status_code == 200
    assert client.get("/v1/health/liveness", headers=bare).status_code == 200
    assert client.get("/v1/collections/features/extractors", headers=bare).status_code == 200
    assert client.get("/v1/retrievers/stages", headers=bare).status_code == 200


def test_another_org_sees_nothing(client: TestClient, world: dict[str, Any]) -> None:
    ids = world["ids"]
    other = {"Authorization": f"Bearer {world['other_key']}", "X-Namespace": ids["namespace_id"]}
    for method, path in _routes(client):
        if (method, path) in PUBLIC | UNSCOPED or path in ("/v1/namespaces", "/v1/namespaces/list", "/v1/tasks/list"):
            continue
        if (method, path) == ("DELETE", "/v1/tasks/{task_id}"):
            continue  # idempotent kill: checked below
        url = _fill(path, ids)
        response = client.request(method, url, headers=other, json={})
        assert response.status_code == 404, f"{method} {url}: {response.status_code} {response.text}"
        body = response.json()
        assert (
            ids["namespace_id"] not in response.text.replace(f"'{ids['namespace_id']}'", "")
            or body["error"]["type"] == "NotFoundError"
        )
    own = {"Authorization": f"Bearer {world['other_key']}", "X-Namespace": ""}
    # Kill answers a foreign task exactly as an unknown one, and leaves it running.
    foreign = client.delete(f"/v1/tasks/{ids['task_id']}", headers=own).json()
    unknown = client.delete("/v1/tasks/task_unknown", headers=own).json()
    assert foreign["success"] is unknown["success"] is True
    assert client.get(f"/v1/tasks/{ids['task_id']}").json()["status"] == "PENDING"
    assert [
        n["namespace_name"] for n in client.post("/v1/namespaces/list", json={}, headers=own).json()["results"]
    ] == ["b-space"]
    assert client.post("/v1/tasks/list", json={}, headers=own).json()["results"] == []
    # Even with its own namespace, org B cannot reach org A's bucket by id or name.
    bucket_id = client.get("/v1/buckets/docs").json()["bucket_id"]
    b_ns = {**own, "X-Namespace": "b-space"}
    assert_error(client.post("/v1/tasks/list", json={}, headers=other), 404)
    assert_error(client.get(f"/v1/buckets/{bucket_id}", headers=b_ns), 404)
    assert_error(client.get("/v1/buckets/docs", headers=b_ns), 404)


def test_namespace_header_rules(client: TestClient, world: dict[str, Any]) -> None:
    no_ns = {"X-Namespace": ""}
    body = assert_error(client.get("/v1/buckets/docs", headers=no_ns), 400, "BadRequestError")
    assert "X-Namespace" in body["error"]["message"]
    assert_error(client.get("/v1/buckets/docs", headers={"X-Namespace": "ns_unknown"}), 404)
    by_name = client.get("/v1/buckets/docs", headers={"X-Namespace": "main"})
    by_id = client.get("/v1/buckets/docs", headers={"X-Namespace": world["ids"]["namespace_id"]})
    assert by_name.json() == by_id.json()
    assert_error(client.get("/v1/buckets/docs", headers={"X-Namespace": "spare"}), 404)
    assert client.get("/v1/namespaces/main", headers={"X-Namespace": "spare"}).status_code == 200


def namespace_org_id(runtime: Any) -> str:
    with runtime.db.read_session() as session:
        return str(session.query(Organization.org_id).filter(Organization.name == "default").one()[0])
