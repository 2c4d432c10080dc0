"""Files to objects through presigned uploads: hash, create (100 at a time), PUT in parallel, confirm.

Resumable by content: every upload carries the file's SHA-256 with `skip_duplicates`, so the
server answers a file it already holds with the earlier upload instead of a new URL."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from strataflow.cli.client import ApiError, Client
from strataflow.cli.file_kinds import LocalFile

GROUP = 100  # the upload API's batch create/confirm limit


@dataclass
class UploadOutcome:
    new_object_ids: list[str] = field(default_factory=list)
    skipped: list[tuple[LocalFile, str]] = field(default_factory=list)  # (file, existing object id)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    paths: dict[str, str] = field(default_factory=dict)  # object id -> relative path, to name failed rows


@dataclass
class ProgressHooks:
    """Callbacks the progress display hangs on; each receives an increment."""

    hashed: Callable[[int], None] = lambda n: None
    uploaded_bytes: Callable[[int], None] = lambda n: None
    confirmed: Callable[[int], None] = lambda n: None


def sha256_of(item: LocalFile, on_bytes: Callable[[int], None]) -> str:
    digest = hashlib.sha256()
    with item.path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
            on_bytes(len(block))
    return digest.hexdigest()


def groups(items: list[Any], size: int = GROUP) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def upload_files(client: Client, bucket: str, files: list[LocalFile], hooks: ProgressHooks,
                 parallel: int = 4) -> UploadOutcome:
    outcome = UploadOutcome()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        hashes = list(pool.map(lambda f: sha256_of(f, hooks.hashed), files))
        for group in groups(list(zip(files, hashes, strict=True))):
            _upload_group(client, bucket, group, pool, hooks, outcome)
    return outcome


def _create_request(item: LocalFile, sha256: str) -> dict[str, Any]:
    return {"filename": item.path.name, "content_type": item.content_type, "file_size_bytes": item.size or None,
            "blob_property": item.kind, "file_hash": sha256, "skip_duplicates": True,
            "object_metadata": {"filename": item.path.name, "path": item.relative}}


def _upload_group(client: Client, bucket: str, group: list[tuple[LocalFile, str]], pool: ThreadPoolExecutor,
                  hooks: ProgressHooks, outcome: UploadOutcome) -> None:
    empty = [(f, h) for f, h in group if f.size == 0]
    for item, _ in empty:  # the upload API refuses zero-byte files; say so rather than fail the group
        outcome.failures.append((item.relative, "empty file (0 bytes): nothing to upload"))
    group = [(f, h) for f, h in group if f.size > 0]
    if not group:
        return
    answer = client.post(f"/v1/buckets/{bucket}/uploads/batch",
                         json={"uploads": [_create_request(f, h) for f, h in group]})
    pending: list[tuple[LocalFile, dict[str, Any]]] = []
    for (item, _), upload in zip(group, answer["uploads"], strict=True):
        if upload.get("is_duplicate") or upload.get("skipped_unique_key"):
            hooks.uploaded_bytes(item.size)
            hooks.confirmed(1)
            outcome.skipped.append((item, _existing_object(client, bucket, upload)))
        else:
            pending.append((item, upload))

    def put(entry: tuple[LocalFile, dict[str, Any]]) -> tuple[LocalFile, dict[str, Any], str | None, str | None]:
        item, upload = entry
        try:
            return item, upload, client.put_blob(upload["presigned_url"], item.path, item.content_type,
                                                 hooks.uploaded_bytes), None
        except ApiError as error:
            return item, upload, None, error.message

    sent = []
    for item, upload, etag, error in pool.map(put, pending):
        if error is not None:
            outcome.failures.append((item.relative, error))
        else:
            sent.append((item, upload, etag))
    if sent:
        _confirm(client, bucket, sent, hooks, outcome)


def _existing_object(client: Client, bucket: str, upload: dict[str, Any]) -> str:
    if upload.get("existing_object_id"):
        return str(upload["existing_object_id"])
    original = client.get(f"/v1/buckets/{bucket}/uploads/{upload['duplicate_of_upload_id']}")
    return str(original.get("object_id") or "")


def _confirm(client: Client, bucket: str, sent: list[tuple[LocalFile, dict[str, Any], str | None]],
             hooks: ProgressHooks, outcome: UploadOutcome) -> None:
    answer = client.post(f"/v1/buckets/{bucket}/uploads/confirm/batch", json={"confirmations": [
        {"upload_id": upload["upload_id"], "etag": etag, "file_size_bytes": item.size}
        for item, upload, etag in sent]})
    task = client.wait_task(answer["task_id"])
    by_upload = {str(o.get("upload_id")): o for o in task.get("outputs") or []}
    for item, upload, _ in sent:
        result = by_upload.get(upload["upload_id"], {})
        if result.get("success") and result.get("object_id"):
            outcome.new_object_ids.append(str(result["object_id"]))
            outcome.paths[str(result["object_id"])] = item.relative
            hooks.confirmed(1)
        else:
            outcome.failures.append((item.relative, str(result.get("error") or task.get("error")
                                                        or "confirm did not complete")))
