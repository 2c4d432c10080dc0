"""Tasks: org-scoped reads, lists with filters, idempotent kill."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.runtime import JOB_HANDLERS
from strataflow.services.tenancy.auth import DEFAULT_ORG, create_organization, get_organization, issue_key, revoke_key
from strataflow.services.tenancy.tasks import create_task
from strataflow.statuses import TaskType
from tests.helpers import ExclusiveHolder, assert_error, wait_task


def _queue_bucket_delete(client: TestClient, name: str) -> str:
    client.post("/v1/buckets", json={"bucket_name": name, "bucket_schema": {"properties": {}}})
    return str(client.delete(f"/v1/buckets/{name}").json()["task_id"])


def test_get_list_and_filter(client: TestClient, namespace: dict[str, Any]) -> None:
    task_ids = [_queue_bucket_delete(client, f"b{i}") for i in range(3)]
    for task_id in task_ids:
        assert wait_task(client, task_id)["status"] == "COMPLETED"
    del client.headers["X-Namespace"]  # tasks are org-scoped; the SDK sends no namespace here
    task = client.get(f"/v1/tasks/{task_ids[0]}").json()
    assert task["task_type"] == "api_buckets_delete" and task["additional_data"]["namespace_id"]
    listed = client.post(
        "/v1/tasks/list?include_total=true", json={"task_type": "API_BUCKETS_DELETE", "status": "COMPLETED"}
    ).json()
    assert listed["pagination"]["total"] == 3
    assert {t["task_id"] for t in listed["results"]} == set(task_ids)
    by_filter = client.post("/v1/tasks/list", json={"filters": {"field": "task_id", "value": task_ids[1]}}).json()
    assert [t["task_id"] for t in by_filter["results"]] == [task_ids[1]]
    assert_error(client.post("/v1/tasks/list", json={"status": "DONE"}), 422)
    assert_error(client.get("/v1/tasks/task_doesnotexist"), 404, "NotFoundError")


def test_x_namespace_narrows_the_list(client: TestClient, namespace: dict[str, Any]) -> None:
    wait_task(client, _queue_bucket_delete(client, "a"))
    client.post("/v1/namespaces", json={"namespace_name": "other"})
    client.headers["X-Namespace"] = "other"
    wait_task(client, _queue_bucket_delete(client, "b"))
    assert len(client.post("/v1/tasks/list", json={}).json()["results"]) == 1
    del client.headers["X-Namespace"]
    assert len(client.post("/v1/tasks/list", json={}).json()["results"]) == 2


def test_kill_is_idempotent(client: TestClient, namespace: dict[str, Any], runtime: Any) -> None:
    unhandled = next(t for t in TaskType if t not in JOB_HANDLERS)  # so the task stays PENDING
    with runtime.db.transaction() as session:
        pending = create_task(session, namespace_org(client), unhandled).task_id
    killed = client.delete(f"/v1/tasks/{pending}").json()
    assert killed["success"] is True and "canceled" in killed["message"]
    assert client.get(f"/v1/tasks/{pending}").json()["status"] == "CANCELED"
    again = client.delete(f"/v1/tasks/{pending}")
    assert again.status_code == 200 and again.json()["success"] is True
    assert client.delete("/v1/tasks/task_unknown").json()["success"] is True
    done = _queue_bucket_delete(client, "c")
    wait_task(client, done)
    client.delete(f"/v1/tasks/{done}")
    assert client.get(f"/v1/tasks/{done}").json()["status"] == "COMPLETED"


def namespace_org(client: TestClient) -> str:
    from strataflow.store.tables import Namespace

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.db.read_session() as session:
        return str(session.query(Namespace.org_id).first()[0])


def _lease_to(runtime: Any, task_id: str, owner: str) -> None:
    """Make a queued job look as if `owner` had claimed it a moment ago (lease still running)."""
    from datetime import timedelta

    from strataflow.clock import utcnow
    from strataflow.store.tables import Task

    with runtime.db.transaction() as session:
        task = session.get(Task, task_id)
        task.status, task.lease_owner = "PROCESSING", owner
        task.lease_expires_at = utcnow() + timedelta(minutes=10)


def test_a_job_of_a_dead_local_process_is_taken_at_once(
    client: TestClient, namespace: dict[str, Any], runtime: Any
) -> None:
    import socket
    import subprocess

    from strataflow.engine.leases import Holder, node_key

    def holder(pid: int, node: str | None = node_key(), host: str = socket.gethostname()) -> str:
        return str(Holder(host, pid, "0123456789ab", node))

    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid names no process now
    runtime.stop_background()  # hold the job runner while the leases are set up
    dead = _queue_bucket_delete(client, "dead")
    alive = _queue_bucket_delete(client, "alive")
    elsewhere = _queue_bucket_delete(client, "elsewhere")
    _lease_to(runtime, dead, holder(gone.pid))
    _lease_to(runtime, alive, holder(os.getppid()))  # a live process of this host
    # Other hosts' and other PID namespaces' processes are never judged, whatever their host name.
    _lease_to(runtime, elsewhere, holder(gone.pid, node="0123456789ab"))
    assert runtime.jobs.run_pending() == 1
    task = client.get(f"/v1/tasks/{dead}").json()
    assert task["status"] == "COMPLETED"
    assert client.get(f"/v1/tasks/{alive}").json()["status"] == "PROCESSING"
    assert client.get(f"/v1/tasks/{elsewhere}").json()["status"] == "PROCESSING"


# The polling path (GET /v1/tasks/{id}) reads the key and the task in one joined statement; these
# pin what it must still tell apart, and that it answers what the list (the ORM path) answers.


def test_polling_answers_what_the_list_answers(client: TestClient, namespace: dict[str, Any]) -> None:
    task_id = _queue_bucket_delete(client, "polled")
    wait_task(client, task_id)
    del client.headers["X-Namespace"]
    polled = client.get(f"/v1/tasks/{task_id}").json()
    listed = client.post("/v1/tasks/list", json={"filters": {"field": "task_id", "value": task_id}}).json()
    assert [polled] == listed["results"]
    assert polled["additional_data"]["created_at"] and polled["additional_data"]["namespace_id"]


def test_a_key_revoked_between_polls_is_refused_on_the_next(client: TestClient, runtime: Any) -> None:
    with runtime.db.transaction() as session:
        org = get_organization(session, DEFAULT_ORG)
        key = issue_key(session, org, "poller")
        task_id = create_task(session, org.org_id, _unhandled_type()).task_id
    headers = {"Authorization": f"Bearer {key.plaintext}"}
    assert client.get(f"/v1/tasks/{task_id}", headers=headers).json()["status"] == "PENDING"
    with runtime.db.transaction() as session:
        revoke_key(session, key.key_id)
    body = assert_error(client.get(f"/v1/tasks/{task_id}", headers=headers), 401, "UnauthorizedError")
    assert body["error"]["message"] == "Invalid or revoked API key"


def test_polling_tells_a_bad_key_from_an_unknown_task(client: TestClient, runtime: Any) -> None:
    with runtime.db.transaction() as session:
        other_key = issue_key(session, create_organization(session, "poll-other"), "k").plaintext
        task_id = create_task(session, get_organization(session, DEFAULT_ORG).org_id, _unhandled_type()).task_id
    unknown = {"Authorization": "Bearer sk_not_a_key_of_anyone_at_all"}
    # A bad key is a 401 whether or not the task exists: the answer does not reveal which tasks exist.
    assert_error(client.get(f"/v1/tasks/{task_id}", headers=unknown), 401, "UnauthorizedError")
    assert_error(client.get("/v1/tasks/task_doesnotexist", headers=unknown), 401, "UnauthorizedError")
    assert_error(client.get(f"/v1/tasks/{task_id}", headers={"Authorization": "Basic abc"}), 401)
    assert_error(client.get(f"/v1/tasks/{task_id}", headers={"Authorization": ""}), 401)
    # Another org's good key: the task looks exactly like an unknown one.
    foreign = assert_error(
        client.get(f"/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {other_key}"}), 404, "NotFoundError"
    )
    missing = assert_error(client.get("/v1/tasks/task_doesnotexist"), 404, "NotFoundError")
    assert foreign["error"]["details"] == {"resource": "Task", "identifier": task_id}
    assert missing["error"]["details"] == {"resource": "Task", "identifier": "task_doesnotexist"}
    assert client.get(f"/v1/tasks/{task_id}").status_code == 200


def _unhandled_type() -> TaskType:
    """A task type no job handler runs, so the task stays PENDING while the test polls it."""
    return next(t for t in TaskType if t not in JOB_HANDLERS)


# SQLite only: PostgreSQL's polls always read from the thread pool.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_poll_of_a_busy_sqlite_file_is_answered_from_the_thread_pool(
    client: TestClient, runtime: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite polls read on the event loop, which may not wait: a file held by another connection
    sends the read to the thread pool, where it waits for the file and answers."""
    with runtime.db.transaction() as session:
        task_id = create_task(session, get_organization(session, DEFAULT_ORG).org_id, _unhandled_type()).task_id
    runtime.stop_background()  # its loops would open connections, each holding a shared lock on the file
    runtime.db.dispose()
    holder = ExclusiveHolder(runtime.settings.data_dir / "strataflow.db", "UPDATE tasks SET status = status")
    releaser = holder.release_after(0.5)
    with caplog.at_level(logging.INFO, logger="strataflow.api.tasks"):
        polled = client.get(f"/v1/tasks/{task_id}")
    releaser.join()
    assert polled.status_code == 200 and polled.json()["status"] == "PENDING", polled.text
    assert any("database busy" in r.getMessage() for r in caplog.records)
    runtime.start_background()
