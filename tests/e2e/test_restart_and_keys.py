"""Real processes: data survives restarts (even SIGKILL); keys are managed while the server runs."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.live import API_KEY, free_port, run_cli, start_server


def _client(url: str, key: str = API_KEY, namespace: str | None = "main") -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"}
    if namespace:
        headers["X-Namespace"] = namespace
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def test_objects_survive_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    server = start_server(data_dir, port)
    with _client(server.url, namespace=None) as api:
        assert api.post("/v1/namespaces", json={"namespace_name": "main"}).status_code == 200
    created: list[str] = []
    with _client(server.url) as api:
        api.post("/v1/buckets", json={"bucket_name": "b", "bucket_schema": {"properties": {"t": {"type": "text"}}}})
        for i in range(25):
            body = {"blobs": [{"property": "t", "type": "text", "data": f"object {i}"}]}
            created.append(api.post("/v1/buckets/b/objects", json=body).json()["object_id"])
    server.stop(signal.SIGKILL)  # no clean shutdown: everything answered must be durable

    server = start_server(data_dir, port)
    try:
        with _client(server.url) as api:
            listed = api.post("/v1/buckets/b/objects/list?limit=100", json={}).json()
            assert sorted(o["object_id"] for o in listed["results"]) == sorted(created)
            one = api.get(f"/v1/buckets/b/objects/{created[7]}?return_presigned_urls=true").json()
            download = httpx.get(one["blobs"][0]["properties"]["presigned_url"], timeout=10)
            assert download.status_code in (200, 404)  # the GET route lands with uploads; the record is intact
            assert api.get("/v1/buckets/b").json()["object_count"] == 25
    finally:
        server.stop()
    server = start_server(data_dir, port)  # and a clean restart, too
    try:
        with _client(server.url) as api:
            assert api.get("/v1/buckets/b").json()["object_count"] == 25
    finally:
        server.stop()


def test_generated_admin_key_and_cli_key_management(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, extra_env={"STRATAFLOW_API_KEY": ""})
    try:
        key_file = data_dir / "admin-key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        admin = key_file.read_text().strip()
        assert admin.startswith("sk_")
        with _client(server.url, admin, None) as api:
            assert api.post("/v1/namespaces/list", json={}).status_code == 200

        made = run_cli("orgs", "create", "tenant-b", data_dir=data_dir)
        assert made.returncode == 0, made.stderr
        tenant_key = made.stdout.split("(shown once):")[1].split()[0]
        with _client(server.url, tenant_key, None) as api:
            assert api.post("/v1/namespaces", json={"namespace_name": "b-only"}).status_code == 200
        with _client(server.url, admin, None) as api:
            names = [n["namespace_name"] for n in api.post("/v1/namespaces/list", json={}).json()["results"]]
            assert "b-only" not in names

        extra = run_cli("keys", "create", "--org", "tenant-b", "--name", "ci", data_dir=data_dir)
        assert extra.returncode == 0, extra.stderr
        key_id = extra.stdout.split()[1]
        extra_key = extra.stdout.split("(shown once):")[1].split()[0]
        listing = run_cli("keys", "list", "--org", "tenant-b", data_dir=data_dir)
        assert key_id in listing.stdout and extra_key not in listing.stdout
        with _client(server.url, extra_key, None) as api:
            assert api.post("/v1/namespaces/list", json={}).status_code == 200
        assert run_cli("keys", "revoke", key_id, data_dir=data_dir).returncode == 0
        with _client(server.url, extra_key, None) as api:
            assert api.post("/v1/namespaces/list", json={}).status_code == 401
        missing = run_cli("keys", "create", "--org", "nobody", data_dir=data_dir)
        assert missing.returncode == 1 and "not found" in missing.stderr and "Traceback" not in missing.stderr
    finally:
        server.stop()
