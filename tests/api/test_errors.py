"""Every failure reaches the client as the ErrorResponse envelope; failed writes change nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import assert_error


def test_malformed_json_and_wrong_types(client: TestClient, namespace: dict[str, Any]) -> None:
    broken = client.post("/v1/buckets", content=b'{"bucket_name": ', headers={"content-type": "application/json"})
    body = assert_error(broken, 422, "ValidationError")
    assert body["error"]["details"]["validation_errors"][0]["type"] == "json_invalid"
    wrong = client.post("/v1/buckets", json={"bucket_name": 12, "bucket_schema": []})
    problems = assert_error(wrong, 422)["error"]["details"]["validation_errors"]
    assert {p["location"] for p in problems} >= {"body.bucket_name", "body.bucket_schema"}
    assert "detail" not in wrong.json()
    assert client.post("/v1/buckets/list", json={}).json()["total_count"] == 0


def test_oversized_body_is_413(client: TestClient, namespace: dict[str, Any], runtime: Any) -> None:
    limit = runtime.settings.max_json_body_bytes
    huge = b'{"bucket_name": "x", "description": "' + b"a" * (limit + 10) + b'"}'
    assert_error(
        client.post("/v1/buckets", content=huge, headers={"content-type": "application/json"}),
        413,
        "PayloadTooLargeError",
    )

    def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536

    assert_error(client.post("/v1/buckets", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert client.post("/v1/buckets/list", json={}).json()["total_count"] == 0


def test_unknown_routes_and_methods(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing-here"), 404, "NotFoundError")
    assert_error(client.patch("/v1/tasks/list", json={}), 405, "MethodNotAllowedError")


def test_unknown_fields_are_ignored(client: TestClient, namespace: dict[str, Any]) -> None:
    response = client.post(
        "/v1/buckets", json={"bucket_name": "x", "bucket_schema": {"properties": {}}, "field_from_the_future": True}
    )
    assert response.status_code == 200
    assert "field_from_the_future" not in response.json()
