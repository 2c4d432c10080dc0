"""Clients that keep a server busy until it is killed, and the checks that must hold after a restart.

A `Ledger` records what clients were *told*: an upload confirmed with a 200,
a batch confirm task accepted. After a restart those promises must hold:
exactly one object per confirmed upload, each object with its blob's exact
bytes, every batch and task in exactly one terminal state.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.live import API_KEY

TERMINAL = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"}
TEXT_SCHEMA = {"properties": {"content": {"type": "text"}}}
SENTENCES = 4
# Fields a re-run legitimately changes: when it ran, not what it produced.
VOLATILE = {"created_at", "updated_at", "_internal"}


def api(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {API_KEY}", "X-Namespace": "main"})


def setup_text(client: httpx.Client) -> str:
    """Namespace, a text bucket 'docs' and a sentence-splitting collection; returns the collection id."""
    client.post("/v1/namespaces", json={"namespace_name": "main"}, headers={"X-Namespace": ""})
    bucket = client.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": TEXT_SCHEMA})
    assert bucket.status_code == 200, bucket.text
    collection = client.post(
        "/v1/collections",
        json={
            "collection_name": "sentences",
            "source": {"type": "bucket", "bucket_ids": [bucket.json()["bucket_id"]]},
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": "content"},
                "parameters": {
                    "extractor_type": "text_extractor",
                    "split_by": "sentences",
                    "chunk_size": 1,
                    "model": "wordllama",
                },
            },
        },
    )
    assert collection.status_code == 200, collection.text
    return str(collection.json()["collection_id"])


def text_objects(client: httpx.Client, tag: str, count: int) -> list[str]:
    body = " ".join(f"Sentence {n} of {tag}." for n in range(SENTENCES))
    items = [
        {"blobs": [{"property": "content", "type": "text", "data": f"{body} Object {tag}-{i}."}]} for i in range(count)
    ]
    created = client.post("/v1/buckets/docs/objects/batch", json={"objects": items})
    assert created.status_code == 200, created.text
    return [o["object_id"] for o in created.json()["succeeded"]]


@dataclass
class Ledger:
    """What the server promised, filled by client threads (each list append is atomic)."""

    sent: dict[str, bytes] = field(default_factory=dict)  # upload id -> bytes we meant to store
    put_urls: dict[str, str] = field(default_factory=dict)  # upload id -> its presigned PUT URL
    confirmed: dict[str, str] = field(default_factory=dict)  # upload id -> object id from a 200
    confirm_tasks: list[str] = field(default_factory=list)  # batch confirm task ids from a 200
    server_errors: list[str] = field(default_factory=list)  # any 5xx is a bug


def _upload_one(client: httpx.Client, ledger: Ledger, name: str) -> tuple[str, str] | None:
    data = f"{name}: the crash test wrote this. {name}.".encode()
    created = client.post(
        "/v1/buckets/docs/uploads",
        json={"filename": f"{name}.txt", "content_type": "text/plain", "blob_property": "content"},
    )
    if created.status_code != 200:
        return None
    upload = created.json()
    ledger.sent[upload["upload_id"]] = data
    ledger.put_urls[upload["upload_id"]] = upload["presigned_url"]
    stored = httpx.put(upload["presigned_url"], content=data, headers={"Content-Type": "text/plain"}, timeout=30)
    if stored.status_code != 200:
        return None
    return upload["upload_id"], stored.headers["ETag"]


def upload_until_killed(url: str, ledger: Ledger, seed: int, stop: threading.Event) -> None:
    """Create, PUT, confirm (one at a time, or five in a batch confirm) until the server stops answering."""
    rng = random.Random(seed)
    with api(url) as client:
        n = 0
        while not stop.is_set():
            try:
                if rng.random() < 0.7:
                    got = _upload_one(client, ledger, f"s{seed}-{n}")
                    if got is not None:
                        done = client.post(f"/v1/buckets/docs/uploads/{got[0]}/confirm", json={"etag": got[1]})
                        _note(ledger, done)
                        if done.status_code == 200:
                            ledger.confirmed[got[0]] = done.json()["object_id"]
                else:
                    ready = [g for i in range(5) if (g := _upload_one(client, ledger, f"b{seed}-{n}-{i}"))]
                    if ready:
                        done = client.post(
                            "/v1/buckets/docs/uploads/confirm/batch",
                            json={"confirmations": [{"upload_id": u, "etag": e} for u, e in ready]},
                        )
                        _note(ledger, done)
                        if done.status_code == 200:
                            ledger.confirm_tasks.append(done.json()["task_id"])
            except httpx.TransportError:
                return  # the server is gone: what it answered before is in the ledger
            n += 1


def _note(ledger: Ledger, response: httpx.Response) -> None:
    if response.status_code >= 500:
        ledger.server_errors.append(f"{response.request.url}: {response.status_code} {response.text[:300]}")


def wait_terminal(client: httpx.Client, path: str, timeout: float) -> dict[str, Any]:
    """Poll until terminal. `timeout` is a did-not-hang bound, far above the seconds the work takes."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(path).json()
        if body.get("status") in TERMINAL:
            return dict(body)
        assert time.monotonic() < deadline, f"{path} still {body.get('status')} after {timeout}s"
        time.sleep(0.1)


def kill_point(client: httpx.Client, batch_id: str, rng: random.Random, mid_tier: bool) -> None:
    """Return when the kill should land: after a random delay, or (mid_tier) once rows are being written."""
    if not mid_tier:
        time.sleep(rng.uniform(0.2, 2.5))  # anywhere from the manifest to the claim and the pool's start
        return
    deadline = time.monotonic() + 60  # did-not-hang bound; the first chunk normally lands in seconds
    while time.monotonic() < deadline:
        tiers = client.get(f"/v1/buckets/docs/batches/{batch_id}").json()["tier_tasks"]
        progress = (tiers[0].get("performance") or {}) if tiers else {}
        if 0 < progress.get("rows_done", 0) < progress.get("rows_total", 0):
            time.sleep(rng.uniform(0.0, 0.1))  # a chunk takes longer than this: the kill stays mid-tier
            return
        time.sleep(0.02)
    raise AssertionError(f"the tier never showed partial progress: {tiers}")


def all_objects(client: httpx.Client) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    while True:
        page = client.post(f"/v1/buckets/docs/objects/list?limit=1000&offset={len(objects)}", json={}).json()
        objects += page["results"]
        if len(page["results"]) < 1000:
            return objects


def check_uploads(client: httpx.Client, ledger: Ledger) -> int:
    """Every promise kept; uploads left unconfirmed by the kill confirm now, once. Returns objects checked."""
    assert not ledger.server_errors, ledger.server_errors
    for task_id in ledger.confirm_tasks:  # a confirm job the kill interrupted resumes after the restart
        task = wait_terminal(client, f"/v1/tasks/{task_id}", 90)
        assert task["status"] in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED"), task
        for item in task.get("outputs") or []:
            if item.get("success"):
                ledger.confirmed.setdefault(item["upload_id"], item["object_id"])
    for upload_id, data in ledger.sent.items():
        if upload_id in ledger.confirmed:
            continue
        done = client.post(f"/v1/buckets/docs/uploads/{upload_id}/confirm", json={})
        if done.status_code == 400:  # the kill came before the PUT landed: finish the client's work
            assert (
                httpx.put(ledger.put_urls[upload_id], content=data, headers={"Content-Type": "text/plain"}).status_code
                == 200
            )
            done = client.post(f"/v1/buckets/docs/uploads/{upload_id}/confirm", json={})
        assert done.status_code == 200, (upload_id, done.text)
        ledger.confirmed[upload_id] = done.json()["object_id"]
    objects = {o["object_id"]: o for o in all_objects(client)}
    by_upload: dict[str, list[str]] = {}
    for obj in objects.values():
        key = obj["blobs"][0]["properties"]["key"]
        if "/api_buckets_uploads_create/" in key:
            upload_id = key.split("/api_buckets_uploads_create/")[1].split("/")[0]
            by_upload.setdefault(upload_id, []).append(obj["object_id"])
    for upload_id, object_id in ledger.confirmed.items():
        assert by_upload.get(upload_id) == [object_id], (upload_id, object_id, by_upload.get(upload_id))
        again = client.post(f"/v1/buckets/docs/uploads/{upload_id}/confirm", json={})
        assert again.status_code == 200 and again.json()["object_id"] == object_id, again.text
    assert set(by_upload) <= set(ledger.sent), "an object for an upload no client made"
    for upload_id, object_id in ledger.confirmed.items():  # the blob is there, byte for byte
        obj = client.get(f"/v1/buckets/docs/objects/{object_id}", params={"return_presigned_urls": True}).json()
        blob = obj["blobs"][0]
        body = httpx.get(blob["properties"]["presigned_url"]).content
        assert body == ledger.sent[upload_id], upload_id
        assert blob["details"]["hash"] == hashlib.sha256(body).hexdigest()
    return len(ledger.confirmed)


def documents(client: httpx.Client, collection_id: str) -> dict[str, dict[str, Any]]:
    """document id -> payload without the fields a re-run may change."""
    found: dict[str, dict[str, Any]] = {}
    while True:
        page = client.post(
            f"/v1/collections/{collection_id}/documents/list?limit=1000&offset={len(found)}", json={}
        ).json()["results"]
        for doc in page:
            assert doc["document_id"] not in found, f"document {doc['document_id']} listed twice"
            found[doc["document_id"]] = {k: v for k, v in doc.items() if k not in VOLATILE}
            found[doc["document_id"]]["root"] = doc["_internal"]["lineage"]["root_object_id"]
        if len(page) < 1000:
            return found


def terminal_events(database_url: str, entity_ids: list[str]) -> dict[str, list[str]]:
    """entity id -> the terminal states it entered, from the status_events history (nothing else records them)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT entity_id, to_status FROM status_events ORDER BY event_id")).all()
    finally:
        engine.dispose()
    wanted = set(entity_ids)
    history: dict[str, list[str]] = {e: [] for e in entity_ids}
    for entity_id, to_status in rows:
        if entity_id in wanted and to_status in TERMINAL:
            history[entity_id].append(to_status)
    return history
