"""Assertions and polling shared by the tests."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
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


class ExclusiveHolder:
    """Another connection holding the SQLite file exclusively, so that every other read must wait
    (the rare moments a WAL reader waits at all: a recovery, a log restart, a tool like this)."""

    def __init__(self, path: Path, write: str) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        self.connection.execute("BEGIN EXCLUSIVE")
        self.connection.execute(write)  # the lock is taken at the first write

    def release_after(self, seconds: float) -> threading.Thread:
        def release() -> None:
            time.sleep(seconds)
            self.connection.execute("COMMIT")
            self.connection.close()

        thread = threading.Thread(target=release)
        thread.start()
        return thread
