"""Manifests round-trip through blob storage in bounded chunks, on a local directory and on S3 (moto over HTTP)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from strataflow.blobs import BlobStore
from strataflow.blobs.local import LocalBlobStore
from strataflow.blobs.stores import open_blob_store
from strataflow.config import Settings
from strataflow.engine.manifest import ManifestRow, count_rows, manifest_key, read_manifest, write_manifest
from tests.s3_server import MotoServer, moto_server  # noqa: F401  (the session's S3 server)


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path, b"s" * 32, "http://x")
    moto: MotoServer = request.getfixturevalue("moto_server")
    bucket = f"sf-{secrets.token_hex(6)}"
    moto.client().create_bucket(Bucket=bucket)
    return open_blob_store(Settings(data_dir=tmp_path / "data", **moto.settings_for(bucket)))


def test_round_trip_in_chunks(blobs: BlobStore) -> None:
    key = manifest_key("ns_1", "btch_1", 0)
    rows = (
        ManifestRow(
            row_id=f"obj_{i}",
            root_object_id=f"obj_{i}",
            root_bucket_id="bkt_1",
            source_type="bucket",
            source_object_id=f"obj_{i}",
            payload={"metadata": {"n": i}},
            lineage_chain=[{"collection_id": "col_1"}] if i % 2 else [],
        )
        for i in range(2_500)
    )
    assert write_manifest(blobs, key, rows, chunk_rows=1_000) == 2_500
    assert count_rows(blobs, key) == 2_500
    chunks = list(read_manifest(blobs, key, chunk_rows=1_000))
    assert [len(c) for c in chunks] == [1_000, 1_000, 500]
    first, last = chunks[0][0], chunks[-1][-1]
    assert first.payload == {"metadata": {"n": 0}} and first.lineage_chain == [] and first.source_document_id is None
    assert last.row_id == "obj_2499" and last.lineage_chain == [{"collection_id": "col_1"}]
