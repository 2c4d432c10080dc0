"""Assertions and polling shared by the tests."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from strataflow.statuses import TERMINAL


def wait_task(client: TestClient, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """Poll a task until it is terminal, as a client would."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/tasks/{task_id}").json()
        if body.get("status") in {s.value for s in TERMINAL}:
            return dict(body)
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} still {body.get('status')} after {timeout}s")
        time.sleep(0.05)


def assert_error(response: Any, status: int, type_: str | None = None) -> dict[str, Any]:
    """The response is the contract's ErrorResponse envelope with this status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["status"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if type_ is not None:
        assert body["error"]["type"] == type_, body
    return dict(body)
