"""A large file through a real server on the local back end, with the server's memory flat.

256 MB goes up in one streamed PUT and 256 MB more as four multipart parts;
both confirmations run as background tasks (they are above the 100 MB
threshold). The server's peak resident memory may grow by far less than one
file: nothing holds a whole body in memory. (The 2 GB run is in bench/uploads.py.)
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.conftest import API_KEY, LiveServer, start_server

MiB = 1024 * 1024
SIZE = 256 * MiB
PART = 64 * MiB
MAX_GROWTH = 96 * MiB  # well under one file, so buffering a body would fail this


def _blocks(seed: int, size: int) -> Iterator[bytes]:
    block = hashlib.shake_256(str(seed).encode()).digest(MiB)
    for index in range(size // MiB):
        yield index.to_bytes(8, "big") + block[8:]


def _sha256(seed: int, size: int) -> str:
    digest = hashlib.sha256()
    for chunk in _blocks(seed, size):
        digest.update(chunk)
    return digest.hexdigest()


def _status(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


class PeakSampler:
    """The highest resident memory of a process, sampled every 20 ms from a thread.

    Sampling works on every kernel (resetting the kernel's own peak counter does not),
    and a 256 MB transfer takes seconds, so a 20 ms sample cannot miss a buffered file.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = _status(pid)["VmRSS"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _status(self.pid)["VmRSS"])

    def start(self) -> PeakSampler:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("large") / "data")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, timeout=120, headers={"Authorization": f"Bearer {API_KEY}", "X-Namespace": "big"}
    ) as client:
        created = client.post("/v1/namespaces", json={"namespace_name": "big", "feature_extractors": []})
        assert created.status_code == 200, created.text
        schema = {"properties": {"clip": {"type": "video"}}}
        assert client.post("/v1/buckets", json={"bucket_name": "media", "bucket_schema": schema}).status_code == 200
        yield client


def _wait(api: httpx.Client, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        task = api.get(f"/v1/tasks/{task_id}").json()
        if task["status"] in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"):
            return dict(task)
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish")


def _create(api: httpx.Client, name: str, size: int) -> dict[str, Any]:
    response = api.post(
        "/v1/buckets/media/uploads",
        json={"filename": name, "content_type": "video/mp4", "blob_property": "clip", "file_size_bytes": size},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _put(url: str, body: Iterator[bytes], size: int, content_type: str | None) -> httpx.Response:
    headers = {"Content-Length": str(size), **({"Content-Type": content_type} if content_type else {})}
    return httpx.put(url, content=body, headers=headers, timeout=300)


def _confirm_in_background(api: httpx.Client, upload_id: str, size: int) -> dict[str, Any]:
    answer = api.post(f"/v1/buckets/media/uploads/{upload_id}/confirm", json={"file_size_bytes": size}).json()
    assert answer["status"] == "PROCESSING", answer
    task = _wait(api, answer["task_id"])
    assert task["status"] == "COMPLETED", task
    return dict(task["outputs"][0])


def test_large_files_stream_with_flat_memory(server: LiveServer, api: httpx.Client) -> None:
    warm = _create(api, "warm.mp4", MiB)  # load every code path before measuring
    assert _put(warm["presigned_url"], _blocks(0, MiB), MiB, "video/mp4").status_code == 200
    assert api.post(f"/v1/buckets/media/uploads/{warm['upload_id']}/confirm", json={}).status_code == 200
    pid = server.process.pid
    before = _status(pid)["VmRSS"]
    sampler = PeakSampler(pid).start()

    single = _create(api, "single.mp4", SIZE)
    stored = _put(single["presigned_url"], _blocks(1, SIZE), SIZE, "video/mp4")
    assert stored.status_code == 200, stored.text
    done = _confirm_in_background(api, single["upload_id"], SIZE)
    assert done["file_hash"] == _sha256(1, SIZE) and done["object_id"]

    multi = _create(api, "parts.mp4", SIZE)
    plan = api.post(f"/v1/buckets/media/uploads/{multi['upload_id']}/multipart", json={"part_size_bytes": PART}).json()
    assert plan["part_count"] == SIZE // PART
    chunks_per_part = PART // MiB
    for part in reversed(plan["parts"]):  # any order
        first = (part["part_number"] - 1) * chunks_per_part
        body = (c for i, c in enumerate(_blocks(2, SIZE)) if first <= i < first + chunks_per_part)
        assert _put(part["presigned_url"], body, part["size_bytes"], None).status_code == 200
    joined = _confirm_in_background(api, multi["upload_id"], SIZE)
    assert joined["file_hash"] == _sha256(2, SIZE) and joined["etag"].endswith(f"-{plan['part_count']}")

    peak = sampler.stop()
    assert peak - before < MAX_GROWTH, f"server peak RSS grew by {(peak - before) / MiB:.0f} MiB"
    blobs = server.data_dir / "blobs"
    assert sum(p.stat().st_size for p in blobs.rglob("*.mp4")) == 2 * SIZE + MiB
    assert not [p for p in blobs.rglob("*") if p.is_file() and ("_multipart" in p.parts or p.name.startswith(".tmp-"))]
