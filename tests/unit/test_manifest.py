"""Manifests round-trip through blob storage in bounded chunks."""

from __future__ import annotations

from pathlib import Path

from strataflow.blobs.local import LocalBlobStore
from strataflow.engine.manifest import ManifestRow, count_rows, manifest_key, read_manifest, write_manifest


def test_round_trip_in_chunks(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path, b"s" * 32, "http://x")
    key = manifest_key("ns_1", "btch_1", 0)
    rows = (ManifestRow(row_id=f"obj_{i}", root_object_id=f"obj_{i}", root_bucket_id="bkt_1",
                        source_type="bucket", source_object_id=f"obj_{i}", payload={"metadata": {"n": i}},
                        lineage_chain=[{"collection_id": "col_1"}] if i % 2 else [])
            for i in range(2_500))
    assert write_manifest(blobs, key, rows, chunk_rows=1_000) == 2_500
    assert count_rows(blobs, key) == 2_500
    chunks = list(read_manifest(blobs, key, chunk_rows=1_000))
    assert [len(c) for c in chunks] == [1_000, 1_000, 500]
    first, last = chunks[0][0], chunks[-1][-1]
    assert first.payload == {"metadata": {"n": 0}} and first.lineage_chain == [] and first.source_document_id is None
    assert last.row_id == "obj_2499" and last.lineage_chain == [{"collection_id": "col_1"}]
