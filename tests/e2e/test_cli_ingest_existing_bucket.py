"""`strataflow ingest` into buckets made through the API (issue 17): files go to the property of
their type, a choice is asked for where there are several, a kind the bucket lacks is skipped
with its reason, and the exit code says whether every file was stored."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live import API_KEY, LiveServer, run_client, start_server

NAMESPACE = "existing"
# The smallest valid PNG (1x1, grey): no collection here reads images, they are only stored.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a4944415478da63600000000200015d0b1d0a0000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("ingest-existing") / "data")
    with _api(live) as api:
        api.post("/v1/namespaces", json={"namespace_name": NAMESPACE}).raise_for_status()
    yield live
    live.stop()


def _api(server: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {API_KEY}", "X-Namespace": NAMESPACE}
    )


def _bucket(server: LiveServer, name: str, properties: dict[str, str]) -> str:
    with _api(server) as api:
        answer = api.post(
            "/v1/buckets",
            json={
                "bucket_name": name,
                "bucket_schema": {"properties": {prop: {"type": kind} for prop, kind in properties.items()}},
            },
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["bucket_id"])


def _folder(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (root / name).write_bytes(content)
        else:
            (root / name).write_text(content)
    return root


def _ingest(server: LiveServer, folder: Path, bucket: str, *args: str) -> Any:
    return run_client(
        "ingest",
        str(folder),
        "--bucket",
        bucket,
        "--namespace",
        NAMESPACE,
        "--text-model",
        "wordllama",
        *args,
        url=server.url,
    )


def _row(output: str, label: str) -> str:
    match = re.search(rf"{re.escape(label)}\s*│\s*(\S+)", output)
    assert match, f"no '{label}' row in:\n{output}"
    return match.group(1)


def _objects(server: LiveServer, bucket: str) -> dict[str, set[str]]:
    """Each object's `path` metadata -> the properties its blobs are in."""
    with _api(server) as api:
        rows = api.post(f"/v1/buckets/{bucket}/objects/list", params={"limit": 100}, json={}).json()["results"]
    return {row["metadata"]["path"]: {blob["property"] for blob in row["blobs"]} for row in rows}


def _collections_of(server: LiveServer, bucket_id: str) -> list[dict[str, Any]]:
    with _api(server) as api:
        rows = api.post("/v1/collections/list", params={"limit": 100}, json={}).json()["results"]
    return [c for c in rows if bucket_id in (c.get("source") or {}).get("bucket_ids", [])]


def _plain(result: Any) -> str:
    """stdout and stderr as one line of text: rich wraps long messages at the terminal width."""
    return " ".join((result.stdout + result.stderr).split())


@pytest.fixture(scope="module")
def drop(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The issue's repro: properties `content` (text) and `picture` (image), a collection over `content`."""
    bucket_id = _bucket(server, "drop", {"content": "text", "picture": "image"})
    with _api(server) as api:
        answer = api.post(
            "/v1/collections",
            json={
                "collection_name": "drop-chunks",
                "source": {"type": "bucket", "bucket_ids": [bucket_id]},
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": "content"},
                    "parameters": {
                        "extractor_type": "text_extractor",
                        "split_by": "paragraphs",
                        "chunk_size": 1,
                        "model": "wordllama",
                    },
                },
            },
        )
        assert answer.status_code == 200, answer.text
    folder = _folder(
        tmp_path_factory.mktemp("drop"),
        {
            "a.txt": "Lighthouses guide ships.\n\nKeepers lived in them.",
            "notes/b.md": "# Tides\n\nThe moon pulls.",
            "pics/dot.png": PNG,
        },
    )
    return bucket_id, folder


def test_the_issue_repro_maps_files_to_the_buckets_own_properties(server: LiveServer, drop: tuple[str, Path]) -> None:
    bucket_id, folder = drop
    result = _ingest(server, folder, "drop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _row(result.stdout, "objects created") == "3"
    assert _row(result.stdout, "files failed") == "0"
    assert _row(result.stdout, "skipped (no property)") == "0"
    assert "text files go to property content" in result.stdout
    assert "image files go to property picture" in result.stdout
    assert _row(result.stdout, "documents in drop-chunks") == "4"  # one per paragraph of the text files
    assert "already in the bucket" not in result.stdout
    assert "created collection" not in result.stdout  # the bucket's own collection is used
    assert [c["collection_name"] for c in _collections_of(server, bucket_id)] == ["drop-chunks"]
    assert _objects(server, "drop") == {"a.txt": {"content"}, "notes/b.md": {"content"}, "pics/dot.png": {"picture"}}


def test_a_rerun_finds_every_file_already_there_and_exits_0(server: LiveServer, drop: tuple[str, Path]) -> None:
    _, folder = drop
    if not _objects(server, "drop"):
        assert _ingest(server, folder, "drop").returncode == 0
    result = _ingest(server, folder, "drop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _row(result.stdout, "objects created") == "0"
    assert _row(result.stdout, "already there (skipped)") == "3"
    assert "nothing new to process: every file is already in the bucket" in result.stdout
    assert len(_objects(server, "drop")) == 3


def test_a_file_whose_object_was_deleted_is_not_already_there(server: LiveServer, tmp_path: Path) -> None:
    _bucket(server, "deleted", {"body": "text"})
    folder = _folder(tmp_path, {"kept.txt": "Kept.", "gone.txt": "Deleted, then ingested again."})
    assert _ingest(server, folder, "deleted", "--no-process").returncode == 0
    with _api(server) as api:
        rows = api.post("/v1/buckets/deleted/objects/list", json={}).json()["results"]
        gone = next(r["object_id"] for r in rows if r["metadata"]["path"] == "gone.txt")
        assert api.delete(f"/v1/buckets/deleted/objects/{gone}").status_code in (200, 204)
    result = _ingest(server, folder, "deleted", "--no-process")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _row(result.stdout, "objects created") == "1"
    assert _row(result.stdout, "already there (skipped)") == "1"
    assert set(_objects(server, "deleted")) == {"kept.txt", "gone.txt"}


def test_without_a_collection_ingest_creates_ones_that_read_the_existing_properties(
    server: LiveServer, tmp_path: Path
) -> None:
    bucket_id = _bucket(server, "drop_bare", {"content": "text", "picture": "image"})
    folder = _folder(tmp_path, {"a.txt": "Harbours shelter boats.", "dot.png": PNG})
    result = _ingest(server, folder, "drop_bare", "--no-process")
    assert result.returncode == 0, result.stdout + result.stderr
    mappings = {
        c["collection_name"]: c["feature_extractor"]["input_mappings"] for c in _collections_of(server, bucket_id)
    }
    assert mappings == {"drop_bare-text": {"text": "content"}, "drop_bare-image": {"image": "picture"}}
    assert _objects(server, "drop_bare") == {"a.txt": {"content"}, "dot.png": {"picture"}}


def test_several_properties_of_a_kind_need_a_choice_before_anything_is_sent(server: LiveServer, tmp_path: Path) -> None:
    bucket_id = _bucket(server, "two_texts", {"body": "text", "summary": "text"})
    folder = _folder(tmp_path, {"one.txt": "Glaciers carve valleys.", "two.txt": "Rivers carry silt."})
    refused = _ingest(server, folder, "two_texts")
    assert refused.returncode == 1
    assert "several properties" in _plain(refused) and "--property text=body" in _plain(refused)
    assert "Traceback" not in refused.stdout + refused.stderr
    assert _objects(server, "two_texts") == {} and _collections_of(server, bucket_id) == []
    chosen = _ingest(server, folder, "two_texts", "--property", "text=summary")
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert _objects(server, "two_texts") == {"one.txt": {"summary"}, "two.txt": {"summary"}}
    [made] = _collections_of(server, bucket_id)
    assert made["feature_extractor"]["input_mappings"] == {"text": "summary"}
    assert _row(chosen.stdout, "documents in two_texts-text") == "2"


@pytest.fixture(scope="module")
def bad_choices(server: LiveServer) -> str:
    return _bucket(server, "two_texts_bad", {"body": "text", "summary": "text", "picture": "image"})


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("text=nope", "bucket 'two_texts_bad' has no property 'nope'"),
        ("text=picture", "property 'picture' of bucket 'two_texts_bad' holds image, not text"),
        ("sound=body", "unknown kind 'sound'"),
        ("text", "expected KIND=NAME"),
    ],
)
def test_a_bad_property_choice_is_refused_before_uploading(
    server: LiveServer, bad_choices: str, tmp_path: Path, choice: str, message: str
) -> None:
    folder = _folder(tmp_path, {"one.txt": "Dunes wander."})
    result = _ingest(server, folder, "two_texts_bad", "--property", choice)
    assert result.returncode == 1 and message in _plain(result)
    assert _objects(server, "two_texts_bad") == {}


def test_a_kind_the_bucket_lacks_is_skipped_with_its_reason(server: LiveServer, tmp_path: Path) -> None:
    _bucket(server, "texts_only", {"body": "text"})
    folder = _folder(tmp_path, {"one.txt": "Deserts bloom.", "dot.png": PNG})
    result = _ingest(server, folder, "texts_only", "--no-process")
    assert result.returncode == 1  # a skipped file is not stored: a script must hear of it
    assert _row(result.stdout, "objects created") == "1"
    assert _row(result.stdout, "skipped (no property)") == "1"
    assert _row(result.stdout, "files failed") == "0"
    output = _plain(result)
    assert "dot.png" in output and "bucket 'texts_only' has no image property" in output
    assert "1 file(s) skipped" in output
    assert _objects(server, "texts_only") == {"one.txt": {"body"}}
    accepted = _ingest(server, folder, "texts_only", "--no-process", "--allow-skipped")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert _row(accepted.stdout, "already there (skipped)") == "1"
    assert _row(accepted.stdout, "objects created") == "0"


def test_a_failing_file_fails_the_run_and_is_named(server: LiveServer, tmp_path: Path) -> None:
    _bucket(server, "failing", {"body": "text"})
    folder = _folder(tmp_path, {"good.txt": "Stored.", "empty.txt": "", "back\\slash.txt": "A name the API refuses."})
    result = _ingest(server, folder, "failing", "--no-process")
    assert result.returncode == 1
    assert _row(result.stdout, "objects created") == "1"
    assert _row(result.stdout, "files failed") == "2"
    output = _plain(result)
    assert "empty.txt" in output and "empty file (0 bytes)" in output
    assert "back\\slash.txt" in output and "must be a file name without '/' or '\\'" in output
    assert "ingest incomplete: 2 file(s) failed" in output
    assert "already" not in _row(result.stdout, "files failed")
    assert set(_objects(server, "failing")) == {"good.txt"}  # the refused file did not stop the others
    again = _ingest(server, folder, "failing", "--no-process")
    assert again.returncode == 1 and _row(again.stdout, "files failed") == "2"
    assert _row(again.stdout, "already there (skipped)") == "1"
    assert "every file is already in the bucket" not in again.stdout


def test_a_batch_that_ends_failed_fails_the_run(server: LiveServer, tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"broken.pdf": b"%PDF-1.4 this is not a PDF at all"})
    result = _ingest(server, folder, "broken_pdfs")
    assert result.returncode == 1, result.stdout + result.stderr
    assert _row(result.stdout, "objects created") == "1"
    output = _plain(result)
    assert re.search(r"batch btch_\w+ ended FAILED", output), output
    assert "broken.pdf" in output.split("failures", 1)[1]  # the failed row is named by its file


def test_a_new_bucket_takes_the_property_names_chosen(server: LiveServer, tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"one.txt": "Fjords are drowned valleys."})
    result = _ingest(server, folder, "named", "--property", "text=body", "--no-process")
    assert result.returncode == 0, result.stdout + result.stderr
    with _api(server) as api:
        schema = api.get("/v1/buckets/named").json()["bucket_schema"]["properties"]
    assert {name: field["type"] for name, field in schema.items()} == {
        "body": "text",
        "filename": "string",
        "path": "string",
    }
    assert _objects(server, "named") == {"one.txt": {"body"}}


def test_two_identical_files_make_one_object_and_one_already_there(server: LiveServer, tmp_path: Path) -> None:
    _bucket(server, "twins", {"body": "text"})
    folder = _folder(tmp_path, {"a.txt": "Same bytes.", "b.txt": "Same bytes."})
    result = _ingest(server, folder, "twins", "--no-process")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _row(result.stdout, "objects created") == "1"
    assert _row(result.stdout, "already there (skipped)") == "1"
    assert len(_objects(server, "twins")) == 1


def test_a_unique_key_held_by_other_content_is_a_failure_not_already_there(server: LiveServer, tmp_path: Path) -> None:
    with _api(server) as api:
        answer = api.post(
            "/v1/buckets",
            json={
                "bucket_name": "keyed",
                "unique_key": {"fields": ["path"], "default_policy": "insert"},
                "bucket_schema": {"properties": {"body": {"type": "text"}, "path": {"type": "string"}}},
            },
        )
        assert answer.status_code == 200, answer.text
    folder = _folder(tmp_path, {"note.txt": "First version."})
    assert _ingest(server, folder, "keyed", "--no-process").returncode == 0
    (folder / "note.txt").write_text("Second version: the key `path` is taken by the first.")
    result = _ingest(server, folder, "keyed", "--no-process")
    assert result.returncode == 1
    assert _row(result.stdout, "already there (skipped)") == "0"
    assert _row(result.stdout, "files failed") == "1"
    assert "note.txt" in _plain(result) and "not stored: An object with the same unique key" in _plain(result)
