"""Files to objects through presigned uploads: hash, create (100 at a time), PUT in parallel, confirm.

Resumable by content: every upload carries the file's SHA-256 with `skip_duplicates`, so the
server answers a file it already holds with the earlier upload instead of a new URL. A file
counts as already there only when that earlier upload's object still exists; one file that
cannot be sent is a failure of that file, never of the others."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from strataflow.cli.client import ApiError, Client
from strataflow.cli.file_kinds import LocalFile

GROUP = 100  # the upload API's batch create/confirm limit
# Where a refused batch create names its bad item: `details.index`, or a 422's location.
_ITEM_LOCATION = re.compile(r"\buploads\.(\d+)\b")


@dataclass
class UploadOutcome:
    new_object_ids: list[str] = field(default_factory=list)
    already_there: list[tuple[LocalFile, str]] = field(default_factory=list)  # (file, existing object id)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    paths: dict[str, str] = field(default_factory=dict)  # object id -> relative path, to name failed rows


@dataclass
class ProgressHooks:
    """Callbacks the progress display hangs on; each receives an increment."""

    hashed: Callable[[int], None] = lambda n: None
    uploaded_bytes: Callable[[int], None] = lambda n: None
    confirmed: Callable[[int], None] = lambda n: None


@dataclass(frozen=True)
class _Item:
    """One file on its way: where it goes and what it hashes to."""

    file: LocalFile
    blob_property: str
    sha256: str


def sha256_of(item: LocalFile, on_bytes: Callable[[int], None]) -> str:
    digest = hashlib.sha256()
    with item.path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
            on_bytes(len(block))
    return digest.hexdigest()


def groups(items: list[Any], size: int = GROUP) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def upload_files(
    client: Client,
    bucket: str,
    files: list[LocalFile],
    properties: dict[str, str],
    hooks: ProgressHooks,
    parallel: int = 4,
) -> UploadOutcome:
    """Upload `files`, each into the property its kind maps to in `properties`."""
    outcome = UploadOutcome()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        items = []
        for file, (digest, problem) in zip(files, pool.map(lambda f: _hash(f, hooks.hashed), files), strict=True):
            if digest is None:
                outcome.failures.append((file.relative, problem))
            else:
                items.append(_Item(file, properties[file.kind], digest))
        for group in groups(items):
            _upload_group(client, bucket, group, pool, hooks, outcome)
    return outcome


def _hash(item: LocalFile, on_bytes: Callable[[int], None]) -> tuple[str | None, str]:
    """(SHA-256, "") or (None, why the file cannot be read)."""
    try:
        return sha256_of(item, on_bytes), ""
    except OSError as exc:  # removed or unreadable since the walk: that file fails, the rest go on
        return None, f"cannot read the file: {exc.strerror or exc}"


def _create_request(item: _Item, skip_duplicates: bool = True) -> dict[str, Any]:
    file = item.file
    return {
        "filename": file.path.name,
        "content_type": file.content_type,
        "file_size_bytes": file.size or None,
        "blob_property": item.blob_property,
        "file_hash": item.sha256,
        "skip_duplicates": skip_duplicates,
        "object_metadata": {"filename": file.path.name, "path": file.relative},
    }


def _refused_item(error: ApiError, count: int) -> int | None:
    """The index of the item a refused batch create names, if it names one."""
    index = error.details.get("index")
    if index is None:
        for problem in error.details.get("validation_errors") or []:
            if match := _ITEM_LOCATION.search(str(problem.get("location") or "")):
                index = int(match.group(1))
                break
    return index if isinstance(index, int) and 0 <= index < count else None


def _create(
    client: Client, bucket: str, group: list[_Item], outcome: UploadOutcome, skip_duplicates: bool = True
) -> list[tuple[_Item, dict[str, Any]]]:
    """Create the group's uploads. The batch call is all or nothing, so an item it refuses is
    recorded as that file's failure and the rest are asked again."""
    group = list(group)
    while group:
        try:
            answer = client.post(
                f"/v1/buckets/{bucket}/uploads/batch",
                json={"uploads": [_create_request(item, skip_duplicates) for item in group]},
            )
            return list(zip(group, answer["uploads"], strict=True))
        except ApiError as error:
            if error.status is None:
                raise  # the server is gone: nothing more can be sent
            index = _refused_item(error, len(group))
            if index is None:  # refused as a whole (bucket locked, quota): every file of the group fails
                outcome.failures.extend((item.file.relative, error.message) for item in group)
                return []
            outcome.failures.append((group[index].file.relative, re.sub(r"^uploads\[\d+\]: ", "", error.message)))
            del group[index]
    return []


def _upload_group(
    client: Client,
    bucket: str,
    group: list[_Item],
    pool: ThreadPoolExecutor,
    hooks: ProgressHooks,
    outcome: UploadOutcome,
) -> None:
    for item in group:
        if item.file.size == 0:  # the upload API refuses zero-byte files; say so rather than fail the group
            outcome.failures.append((item.file.relative, "empty file (0 bytes): nothing to upload"))
    group = [item for item in group if item.file.size > 0]
    if not group:
        return
    pending: list[tuple[_Item, dict[str, Any]]] = []
    duplicates: list[tuple[_Item, str]] = []
    for item, upload in _create(client, bucket, group, outcome):
        if upload.get("skipped_unique_key"):
            # The bucket's unique key already names an object, and the content differs (the same
            # SHA-256 would have been answered as a duplicate first): the file is not stored.
            reason = upload.get("message") or "an object with the same unique key exists"
            outcome.failures.append(
                (item.file.relative, f"not stored: {reason} (object {upload.get('existing_object_id')})")
            )
        elif upload.get("is_duplicate"):
            duplicates.append((item, _existing_object(client, bucket, upload)))
        else:
            pending.append((item, upload))
    gone = _settle_duplicates(client, bucket, duplicates, hooks, outcome)
    if gone:  # the earlier object was deleted since: upload the file again, as new content
        pending += _create(client, bucket, gone, outcome, skip_duplicates=False)

    def put(entry: tuple[_Item, dict[str, Any]]) -> tuple[_Item, dict[str, Any], str | None, str | None]:
        item, upload = entry
        try:
            return (
                item,
                upload,
                client.put_blob(upload["presigned_url"], item.file.path, item.file.content_type, hooks.uploaded_bytes),
                None,
            )
        except ApiError as error:
            return item, upload, None, error.message
        except OSError as exc:
            return item, upload, None, f"cannot read the file: {exc.strerror or exc}"

    sent = []
    for item, upload, etag, error in pool.map(put, pending):
        if error is not None:
            outcome.failures.append((item.file.relative, error))
        else:
            sent.append((item, upload, etag))
    if sent:
        _confirm(client, bucket, sent, hooks, outcome)


def _existing_object(client: Client, bucket: str, upload: dict[str, Any]) -> str:
    if upload.get("object_id"):
        return str(upload["object_id"])
    original = client.get(f"/v1/buckets/{bucket}/uploads/{upload['duplicate_of_upload_id']}")
    return str(original.get("object_id") or "")


def _settle_duplicates(
    client: Client, bucket: str, duplicates: list[tuple[_Item, str]], hooks: ProgressHooks, outcome: UploadOutcome
) -> list[_Item]:
    """Files whose SHA-256 the bucket has seen are already there if that object still exists;
    returns the others (deleting an object leaves its completed upload behind)."""
    if not duplicates:
        return []
    ids = sorted({object_id for _, object_id in duplicates if object_id})
    present: set[str] = set()
    if ids:
        answer = client.post(
            f"/v1/buckets/{bucket}/objects/list",
            params={"limit": len(ids)},
            json={"filters": {"AND": [{"field": "object_id", "operator": "in", "value": ids}]}},
        )
        present = {str(row["object_id"]) for row in answer["results"]}
    gone = []
    for item, object_id in duplicates:
        if object_id in present:
            hooks.uploaded_bytes(item.file.size)
            hooks.confirmed(1)
            outcome.already_there.append((item.file, object_id))
        else:
            gone.append(item)
    return gone


def _confirm(
    client: Client,
    bucket: str,
    sent: list[tuple[_Item, dict[str, Any], str | None]],
    hooks: ProgressHooks,
    outcome: UploadOutcome,
) -> None:
    try:
        answer = client.post(
            f"/v1/buckets/{bucket}/uploads/confirm/batch",
            json={
                "confirmations": [
                    {"upload_id": upload["upload_id"], "etag": etag, "file_size_bytes": item.file.size}
                    for item, upload, etag in sent
                ]
            },
        )
        task = client.wait_task(answer["task_id"])
    except ApiError as error:
        if error.status is None:
            raise
        outcome.failures.extend((item.file.relative, f"confirm refused: {error.message}") for item, _, _ in sent)
        return
    by_upload = {str(o.get("upload_id")): o for o in task.get("outputs") or []}
    for item, upload, _ in sent:
        result = by_upload.get(upload["upload_id"], {})
        object_id = str(result.get("object_id") or "")
        if result.get("success") and object_id in outcome.paths:
            # Same bytes as a file confirmed earlier in this run: the server answers its object.
            outcome.already_there.append((item.file, object_id))
            hooks.confirmed(1)
        elif result.get("success") and object_id:
            outcome.new_object_ids.append(object_id)
            outcome.paths[object_id] = item.file.relative
            hooks.confirmed(1)
        else:
            outcome.failures.append(
                (item.file.relative, str(result.get("error") or task.get("error") or "confirm did not complete"))
            )
