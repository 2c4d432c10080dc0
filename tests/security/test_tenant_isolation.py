"""Tenant isolation matrix over every operation of the app's own OpenAPI document.

tests/api/test_auth.py checks that each route needs a valid key and that another
org gets a 404. Here, for every route, three intruders aim at organization A's
real resources (their ids filled into the path, and sent as bodies):
  - org B's key with A's namespace id in X-Namespace,
  - org B's key with B's own namespace,
  - A's key with a wrong namespace (A's other, empty namespace),
and each must get 401/403/404 in the ErrorResponse envelope, and the body must not
contain anything of A's that the intruder did not send itself: no ids, no names
(A's bucket, upload, batch, task ...), no results or counts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.services.tenancy.auth import create_organization, issue_key
from tests.api.test_auth import PUBLIC, UNSCOPED, _fill, _routes

# Org-scoped routes: the namespace header does not select what they show (namespaces are
# addressed in the path; tasks belong to the org). The wrong-namespace intruder skips them.
ORG_SCOPED = ("/v1/namespaces", "/v1/tasks", "/v1/collections/features/extractors")
DENIED = {401, 403, 404}
# Routes that answer an unknown id with an empty success rather than a 404, by design:
ANSWERS_UNKNOWN_AS_EMPTY = {
    ("DELETE", "/v1/tasks/{task_id}"),  # kill is idempotent: a foreign task looks unknown, and stays running
    # reads the caller's own collections only; documents may outlive their object, so no 404
    ("GET", "/v1/objects/{object_id}/documents"),
}


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the rules are in the services, not the database; PostgreSQL runs test_auth's matrix


@pytest.fixture
def world(client: TestClient, namespace: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Org A: namespace "main" holding a bucket, an object, an upload, a batch and its task."""
    schema = {"properties": {"c": {"type": "text"}, "title": {"type": "string"}}}
    bucket = client.post("/v1/buckets", json={"bucket_name": "secretbucket", "bucket_schema": schema}).json()
    obj = client.post(
        "/v1/buckets/secretbucket/objects",
        json={"metadata": {"title": "secret-title"}, "blobs": [{"property": "c", "type": "text", "data": "x"}]},
    ).json()
    upload = client.post(
        "/v1/buckets/secretbucket/uploads",
        json={"filename": "secret-file.txt", "content_type": "text/plain", "blob_property": "c"},
    ).json()
    batch = client.post("/v1/buckets/secretbucket/batches", json={"object_ids": [obj["object_id"]]}).json()
    assert client.post("/v1/namespaces", json={"namespace_name": "spare"}).status_code == 200
    with runtime.db.transaction() as session:
        other_key = issue_key(session, create_organization(session, "org-b"), "k").plaintext
    b_space = client.post(
        "/v1/namespaces",
        json={"namespace_name": "b-space"},
        headers={"Authorization": f"Bearer {other_key}", "X-Namespace": ""},
    )
    assert b_space.status_code == 200, b_space.text
    ids = {
        "namespace_identifier": namespace["namespace_id"],
        "namespace_id": namespace["namespace_id"],
        "bucket_identifier": bucket["bucket_id"],
        "object_identifier": obj["object_id"],
        "object_id": obj["object_id"],
        "upload_id": upload["upload_id"],
        "batch_id": batch["batch_id"],
        "task_id": batch["task_id"],
        "feature_extractor_id": "text_extractor_v1",
        "extractor_id": "text_extractor_v1",
        "collection_identifier": "col_unknown0000",
        "collection_id": "col_unknown0000",
        "document_id": "doc_unknown0000",
        "retriever_id": "ret_unknown0000",
    }
    ids = {k: v or "task_unknown0000" for k, v in ids.items()}  # a draft batch has no task yet
    secrets = {v for k, v in ids.items() if "unknown" not in v and "extractor" not in k}
    secrets |= {"secretbucket", "secret-title", "secret-file.txt", upload["s3_key"]}
    return {"ids": ids, "secrets": secrets, "other_key": other_key}


def _body(ids: dict[str, str]) -> dict[str, Any]:
    """A body naming A's resources, so bulk routes (batch confirm, add objects ...) are aimed too."""
    return {
        "object_ids": [ids["object_identifier"]],
        "upload_ids": [ids["upload_id"]],
        "confirmations": [{"upload_id": ids["upload_id"]}],
        "batch_ids": [ids["batch_id"]],
    }


def _leaks(response: Any, sent: str, secrets: set[str]) -> list[str]:
    """A's values in the response that the request did not carry itself."""
    return sorted(s for s in secrets if s in response.text and s not in sent)


def _unknown(ids: dict[str, str]) -> dict[str, str]:
    """Ids of the same shapes that exist nowhere."""
    return {k: v if "extractor" in k else v.split("_")[0] + "_zzzzzzzzzzzz" for k, v in ids.items()}


def _normal(response: Any, *id_maps: dict[str, str]) -> str:
    """The response with every id (A's real ones and the unknown ones) replaced by its name."""
    text = response.text
    pairs = [(name, value) for ids in id_maps for name, value in ids.items()]
    for name, value in sorted(pairs, key=lambda kv: -len(kv[1])):
        text = text.replace(value, f"<{name}>")
    return f"{response.status_code} {text}"


def _check(
    client: TestClient, world: dict[str, Any], headers: dict[str, str], skip: tuple[str, ...], own_scope: bool = False
) -> int:
    """Every route against A's ids, and against ids that exist nowhere: the intruder must be
    denied, and must get the same answer both times (so it cannot tell A's resources exist).
    An answer about the request's shape (422) is the same for both and so allowed. With
    `own_scope` (the intruder holds a valid namespace of its own), routes naming no resource
    in their path act in that namespace: any answer but a 5xx, with nothing of A's in it."""
    checked, ids, unknown = 0, world["ids"], _unknown(world["ids"])
    for method, path in _routes(client):
        if (method, path) in PUBLIC | UNSCOPED or path.startswith(skip) or path == "/v1/namespaces":
            continue
        url, body = _fill(path, ids), _body(ids)
        response = client.request(method, url, headers=headers, json=body)
        where = f"{method} {url} with {headers.get('X-Namespace')!r}: {response.status_code} {response.text[:300]}"
        assert not _leaks(response, url + json.dumps(headers) + json.dumps(body), world["secrets"]), where
        checked += 1
        if own_scope and "{" not in path:
            assert response.status_code < 500, where
            continue
        control = client.request(method, _fill(path, unknown), headers=headers, json=_body(unknown))
        assert _normal(response, ids, unknown) == _normal(control, ids, unknown), where
        if (method, path) in ANSWERS_UNKNOWN_AS_EMPTY and response.status_code == 200:
            continue  # the same answer as for an id that exists nowhere: compared just above
        # 400/422: about the request itself (its body, or path and header naming different
        # namespaces), identical for the unknown ids as compared above
        assert response.status_code in DENIED | {400, 422}, where
        envelope = response.json()
        assert envelope["success"] is False and set(envelope) == {"success", "status", "error"}, where
    return checked


def test_another_org_with_the_victims_namespace(client: TestClient, world: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {world['other_key']}", "X-Namespace": world["ids"]["namespace_id"]}
    # org-scoped lists answer B's own (empty) world: checked below, not as denials
    assert _check(client, world, headers, ("/v1/namespaces/list", "/v1/tasks/list")) >= 60


def test_another_org_in_its_own_namespace(client: TestClient, world: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {world['other_key']}", "X-Namespace": "b-space"}
    skip = ("/v1/namespaces/list", "/v1/tasks/list", "/v1/namespaces/b-space")
    assert _check(client, world, headers, skip, own_scope=True) >= 60
    # B's lists are B's: nothing of A's, in any list, in any count.
    for method, url in (
        ("POST", "/v1/namespaces/list"),
        ("POST", "/v1/tasks/list"),
        ("GET", "/v1/buckets"),
        ("POST", "/v1/buckets/list"),
        ("POST", "/v1/collections/list"),
        ("POST", "/v1/retrievers/list"),
        ("POST", "/v1/organizations/webhooks/list"),
        ("GET", "/v1/events"),  # A's object.created is in A's feed only
        ("GET", "/v1/alerts"),
        ("GET", "/v1/organizations/alerts"),
        ("GET", "/v1/triggers"),
    ):
        response = client.request(method, url, headers=headers, json={})
        assert response.status_code == 200, response.text
        assert not _leaks(response, "", world["secrets"]), f"{url}: {response.text[:300]}"
        results = response.json()["results"]
        assert [r.get("namespace_name") for r in results] in ([], ["b-space"]), f"{url}: {results}"


def test_the_right_org_in_the_wrong_namespace(client: TestClient, world: dict[str, Any]) -> None:
    assert _check(client, world, {"X-Namespace": "spare"}, ORG_SCOPED, own_scope=True) >= 50
