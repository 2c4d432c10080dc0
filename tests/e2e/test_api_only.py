"""An API replica (STRATAFLOW_API_ONLY) needs the database and the blob store, nothing else.

Configured for Ray at an address where nothing listens, it must start and serve
all the same: it never connects to Ray, never starts a runner, a scheduler or
background jobs. Batches it takes are left for `strataflow worker`s.
"""

from __future__ import annotations

from pathlib import Path

from tests.live import free_port, start_server
from tests.reliability.crash_harness import api, setup_text, text_objects


def test_an_api_only_server_starts_and_serves_with_ray_unreachable(tmp_path: Path) -> None:
    nowhere = free_port()  # nothing listens here: a replica that tried to join Ray would fail to start
    server = start_server(
        tmp_path / "data",
        extra_env={
            "STRATAFLOW_API_ONLY": "true",
            "STRATAFLOW_ENGINE": "ray",
            "STRATAFLOW_RAY_ADDRESS": f"127.0.0.1:{nowhere}",
        },
    )
    try:
        with api(server.url) as client:
            setup_text(client)
            object_ids = text_objects(client, "api", 3)
            stored = client.get(f"/v1/buckets/docs/objects/{object_ids[0]}", params={"return_presigned_urls": True})
            assert stored.status_code == 200, stored.text
            batch = client.post("/v1/buckets/docs/batches", json={"object_ids": object_ids}).json()
            submitted = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={})
            assert submitted.status_code == 200 and submitted.json()["status"] == "PENDING", submitted.text
            assert client.get(f"/v1/tasks/{submitted.json()['task_id']}").status_code == 200
        # Nothing of Ray was loaded into the process, let alone connected.
        maps = Path(f"/proc/{server.process.pid}/maps").read_text()
        assert "_raylet" not in maps and "/ray/" not in maps
        assert "ray runner connected" not in server.log_path.read_text()
    finally:
        server.stop()
