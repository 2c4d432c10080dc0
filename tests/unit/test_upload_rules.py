"""Pure upload rules and the local multipart join, without a server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from strataflow.blobs.local import LocalBlobStore
from strataflow.blobs.multipart import MIN_PART_BYTES, MultipartGoneError, PartPlan, multipart_etag, plan_parts
from strataflow.errors import BadRequestError
from strataflow.services.buckets.schema import FieldType
from strataflow.services.uploads.rules import (
    check_filename,
    content_fits,
    default_blob_property,
    derive_blob_type,
    key_safe_filename,
    resolve_blob_target,
)


@pytest.mark.parametrize("name", ["report.pdf", "..hidden", "a..b.txt", "été 2024 (v2).mov", ".env"])
def test_plain_filenames_pass(name: str) -> None:
    check_filename(name)


@pytest.mark.parametrize("name", ["../x", "..", ".", "a/b", "a\\b", "tab\there", "x ", "\x7f"])
def test_paths_and_control_characters_fail(name: str) -> None:
    with pytest.raises(BadRequestError):
        check_filename(name)


def test_storage_keys_get_a_safe_filename() -> None:
    assert key_safe_filename("été #1?.mov") == "_t_ _1_.mov"
    assert key_safe_filename("clip (final) [2].mp4") == "clip (final) [2].mp4"


def test_blob_types_follow_content_types() -> None:
    assert derive_blob_type("video/mp4") is FieldType.VIDEO
    assert derive_blob_type("text/markdown; charset=utf-8") is FieldType.TEXT
    assert derive_blob_type("application/pdf") is FieldType.PDF
    assert derive_blob_type("application/zip") is None
    assert content_fits(FieldType.IMAGE, "application/octet-stream")
    assert not content_fits(FieldType.TEXT, "application/octet-stream")
    assert not content_fits(FieldType.AUDIO, "video/mp4")
    assert default_blob_property("cover.jpg") == "cover" and default_blob_property("my-file.txt") is None


def test_schema_decides_the_blob_type_when_an_object_will_be_made() -> None:
    schema = {"properties": {"scan": {"type": "pdf", "required": False}}}
    target = resolve_blob_target(schema, "scan.bin", "application/octet-stream", None, None, True, None)
    assert target.blob_property == "scan" and target.blob_type is FieldType.PDF
    with pytest.raises(BadRequestError, match="cannot hold"):
        resolve_blob_target(schema, "scan.bin", "image/png", None, None, True, None)


def test_part_plans() -> None:
    plan = plan_parts(2 * 1024**3, 64 * 1024**2)
    assert plan.count == 32 and plan.size_of(32) == 64 * 1024**2
    assert PartPlan(10, MIN_PART_BYTES).count == 1 and PartPlan(10, MIN_PART_BYTES).size_of(1) == 10
    with pytest.raises(BadRequestError):
        plan_parts(100, MIN_PART_BYTES - 1)
    with pytest.raises(BadRequestError, match="at most 10000"):
        plan_parts(MIN_PART_BYTES * 10_001, MIN_PART_BYTES)


def test_multipart_etag_is_s3s() -> None:
    # The ETag a real S3 API (moto) gave for parts of 5 MiB of b"x" and 10 b"y".
    parts = [hashlib.md5(b"x" * MIN_PART_BYTES).hexdigest(), hashlib.md5(b"y" * 10).hexdigest()]
    assert multipart_etag(parts) == "298c9a5c8205ea8eeef29652993678aa-2"


def test_local_join_is_streamed_and_idempotent(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", b"k" * 32, "http://127.0.0.1:1")
    multipart_id = store.create_multipart("up/file.bin", "application/octet-stream")
    chunks = {1: b"a" * 100, 2: b"b" * 50, 3: b"c" * 7}
    for number in (3, 1, 2):
        store.put_bytes(f"_multipart/{multipart_id}/{number:05d}", chunks[number])
    parts = store.list_parts("up/file.bin", multipart_id)
    assert [p.part_number for p in parts] == [1, 2, 3]
    joined = store.complete_multipart("up/file.bin", multipart_id, parts)
    whole = chunks[1] + chunks[2] + chunks[3]
    assert joined.size == len(whole) and joined.sha256 == hashlib.sha256(whole).hexdigest()
    assert joined.etag == multipart_etag([p.etag for p in parts])
    assert b"".join(store.iter_chunks("up/file.bin")) == whole
    assert store.complete_multipart("up/file.bin", multipart_id, parts).etag == joined.etag
    with pytest.raises(MultipartGoneError):
        store.list_parts("up/file.bin", multipart_id)
    assert not list((tmp_path / "blobs" / "_multipart").iterdir())
    with pytest.raises(MultipartGoneError):
        store.complete_multipart("never/there.bin", "abc123", [])
