"""POST /v1/collections/{id}/export: files read back through their presigned URLs, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from strataflow.errors import ConflictError
from strataflow.index.records import StoredDocument, timestamp
from strataflow.runtime import Runtime
from strataflow.services.documents import webdataset
from strataflow.services.documents.export import Column, TableSink
from tests.collection_flows import add_object, make_bucket, run, text_collection
from tests.helpers import assert_error

VECTOR = "text_extractor_v1_wordllama_l2_supercat_256"
ARTICLES = [
    ("Rivers carve valleys. Glaciers carve fjords. Wind shapes dunes.", "Geology", 30, "en"),
    ("Bread needs flour. Yeast makes it rise.", "Baking", 5, "en"),
    ("Le pain a besoin de farine.", "Pain", 12, "fr"),
]
LINEAGE = ("lineage_chain", "source_content_hash", "document_created_at")
GEOLOGY = {"field": "title", "operator": "eq", "value": "Geology"}


@pytest.fixture
def chunks(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """Six one-sentence documents with 256-dimension vectors, made by the real extractor."""
    make_bucket(client)
    collection = text_collection(
        client,
        "sentences",
        {"type": "bucket", "bucket_ids": ["docs"]},
        split_by="sentences",
        chunk_size=1,
        model="wordllama",
        passthrough=("title", "views", "lang"),
    )
    objects = [add_object(client, text, title=title, views=views, lang=lang) for text, title, views, lang in ARTICLES]
    assert run(runtime, collection["collection_id"], objects).documents_written == 6
    listed = client.post("/v1/collections/sentences/documents/list", json={"limit": 100, "return_vectors": True})
    assert listed.status_code == 200, listed.text
    documents = {d["document_id"]: d for d in listed.json()["results"]}
    assert len(documents) == 6
    return {"collection": collection, "objects": objects, "documents": documents}


def export(client: TestClient, body: dict[str, Any], collection: str = "sentences") -> dict[str, Any]:
    response = client.post(f"/v1/collections/{collection}/export", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def fetch(client: TestClient, url: str) -> bytes:
    """GET a presigned URL through the app, without the API key: the signature is the credential."""
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}", headers={"Authorization": ""})
    assert response.status_code == 200, response.text
    return response.content


def exported_files(runtime: Runtime) -> list[str]:
    """Names of the export files in the local blob store (its etag sidecars left out)."""
    root = Path(runtime.settings.data_dir)
    return sorted(p.name for p in root.rglob("documents.*") if "exports" in p.parts and ".etag" not in p.name)


def test_parquet_by_default_with_every_user_field(client: TestClient, chunks: dict[str, Any], runtime: Runtime) -> None:
    answer = export(client, {})
    assert answer["format"] == "parquet" and answer["document_count"] == 6
    assert answer["vectors_download_url"] is None and answer["vectors_s3_path"] is None
    collection_id = chunks["collection"]["collection_id"]
    assert f"/collections/{collection_id}/exports/" in answer["s3_path"] and answer["s3_path"].endswith(".parquet")
    assert datetime.fromisoformat(answer["exported_at"]).tzinfo is not None
    data = fetch(client, answer["download_url"])
    assert answer["file_size_bytes"] == len(data)
    table = pq.read_table(io.BytesIO(data))
    assert table.column_names[:2] == ["document_id", "collection_id"]
    assert {"text", "title", "views", "lang"} <= set(table.column_names) and VECTOR not in table.column_names
    assert table.schema.field("views").type == pa.int64()
    rows = {r["document_id"]: r for r in table.to_pylist()}
    assert set(rows) == set(chunks["documents"])
    for doc_id, doc in chunks["documents"].items():
        assert rows[doc_id]["collection_id"] == collection_id
        assert (rows[doc_id]["text"], rows[doc_id]["title"], rows[doc_id]["views"]) == (
            doc["text"],
            doc["title"],
            doc["views"],
        )
    assert sorted(r["text"] for r in rows.values() if r["lang"] == "fr") == ["Le pain a besoin de farine."]
    assert exported_files(runtime) == ["documents.parquet"]


def test_csv_with_filter_selected_fields_and_lineage(client: TestClient, chunks: dict[str, Any]) -> None:
    answer = export(
        client,
        {
            "format": "csv",
            "filters": {"AND": [GEOLOGY]},
            "select_fields": ["text", "views", "_internal.lineage.root_object_id", "document_id"],
            "include_lineage": True,
        },
    )
    assert answer["format"] == "csv" and answer["document_count"] == 3 and answer["s3_path"].endswith(".csv")
    as_text = pacsv.ConvertOptions(column_types={"document_created_at": pa.string()})  # not parsed as a time
    table = pacsv.read_csv(io.BytesIO(fetch(client, answer["download_url"])), convert_options=as_text)
    assert table.column_names == [
        "document_id",
        "text",
        "views",
        "_internal.lineage.root_object_id",
        "lineage_chain",
        "source_content_hash",
        "document_created_at",
    ]
    rows = table.to_pylist()
    assert sorted(r["text"] for r in rows) == ["Glaciers carve fjords.", "Rivers carve valleys.", "Wind shapes dunes."]
    collection_id = chunks["collection"]["collection_id"]
    for row in rows:
        doc = chunks["documents"][row["document_id"]]
        assert row["views"] == 30 and row["_internal.lineage.root_object_id"] == chunks["objects"][0]
        chain = json.loads(row["lineage_chain"])  # a JSON-encoded list in CSV
        assert [(s["collection_id"], s["document_id"]) for s in chain] == [(collection_id, row["document_id"])]
        assert row["source_content_hash"] is None  # the project records no hash of a document's source
        assert row["document_created_at"] == doc["_internal"]["created_at"]


def test_json_lines_sample_and_vectors_file(client: TestClient, chunks: dict[str, Any]) -> None:
    answer = export(
        client,
        {
            "format": "json",
            "sample_size": 4,
            "include_vectors": True,
            "include_lineage": True,
            "select_fields": ["text"],
        },
    )
    assert answer["format"] == "json" and answer["document_count"] == 4 and answer["s3_path"].endswith(".jsonl")
    lines = fetch(client, answer["download_url"]).decode().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 4 and all(set(r) == {"document_id", "text", *LINEAGE} for r in rows)
    for row in rows:
        assert row["text"] == chunks["documents"][row["document_id"]]["text"]
        assert isinstance(row["lineage_chain"], list) and len(row["lineage_chain"]) == 1  # a list in JSON

    assert answer["vectors_s3_path"].endswith("vectors.parquet")
    vectors = pq.read_table(io.BytesIO(fetch(client, answer["vectors_download_url"])))
    assert vectors.column_names == ["document_id", VECTOR]
    assert vectors.schema.field(VECTOR).type == pa.list_(pa.float32(), 256)
    assert vectors.column("document_id").to_pylist() == [r["document_id"] for r in rows]
    for doc_id, vector in zip(vectors.column("document_id").to_pylist(), vectors.column(VECTOR).to_pylist()):
        assert vector == pytest.approx(chunks["documents"][doc_id][VECTOR])


def test_empty_collection_and_a_filter_matching_nothing(client: TestClient, chunks: dict[str, Any]) -> None:
    answer = export(
        client, {"filters": {"field": "title", "operator": "eq", "value": "Nothing"}, "include_vectors": True}
    )
    assert answer["document_count"] == 0
    table = pq.read_table(io.BytesIO(fetch(client, answer["download_url"])))
    assert table.num_rows == 0 and table.column_names == ["document_id", "collection_id"]
    vectors = pq.read_table(io.BytesIO(fetch(client, answer["vectors_download_url"])))
    assert vectors.num_rows == 0 and vectors.schema.field(VECTOR).type == pa.list_(pa.float32(), 256)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"format": "xml"}, 422, "format"),
        ({"sample_size": 0}, 422, "sample_size"),
        ({"sample_size": 1_000_001}, 422, "sample_size"),
        ({"filters": {"field": "title", "operator": "no_such_operator", "value": 1}}, 400, ""),
        ({"filters": {"field": "a..b", "operator": "eq", "value": 1}}, 400, "a..b"),
        ({"select_fields": ["metadata..title"]}, 400, "metadata..title"),
        ({"select_fields": [VECTOR]}, 400, "include_vectors"),
        ({"destination": {"connection_id": "conn_1", "prefix": "x/"}}, 400, "destination"),
        ({"include_media": True}, 400, "include_media"),
        ({"format": "csv", "samples_per_shard": 10}, 400, "samples_per_shard"),
        ({"format": "webdataset", "samples_per_shard": 0}, 422, "samples_per_shard"),
    ],
)
def test_bad_input_writes_nothing(
    client: TestClient, chunks: dict[str, Any], runtime: Runtime, body: dict[str, Any], status: int, words: str
) -> None:
    answer = assert_error(client.post("/v1/collections/sentences/export", json=body), status)
    assert words in json.dumps(answer["error"])
    assert exported_files(runtime) == []


def test_another_namespace_collection_is_not_found(client: TestClient, chunks: dict[str, Any]) -> None:
    response = client.post("/v1/namespaces", json={"namespace_name": "other", "feature_extractors": []})
    assert response.status_code == 200, response.text
    collection_id = chunks["collection"]["collection_id"]
    refused = client.post(f"/v1/collections/{collection_id}/export", json={}, headers={"X-Namespace": "other"})
    assert_error(refused, 404, "NotFoundError")
    assert export(client, {}, collection_id)["document_count"] == 6  # its own namespace still exports it


def test_many_batches_mixed_kinds_and_a_sample_across_batches(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    """5,000 documents are three record batches: the sample cap cuts the second one, and each
    column's type holds every value of every batch."""
    make_bucket(client)
    collection_id = text_collection(client, "many", {"type": "bucket", "bucket_ids": ["docs"]})["collection_id"]
    runtime.index.append(
        collection_id,
        [
            StoredDocument(
                f"doc_{i:05d}",
                collection_id,
                {"n": i, "ratio": i if i % 2 else i + 0.5, "mixed": i if i % 2 else f"s{i}", "even": i % 2 == 0},
                created_at=timestamp(),
            )
            for i in range(5000)
        ],
    )
    answer = export(client, {"sample_size": 3000}, "many")
    assert answer["document_count"] == 3000
    table = pq.read_table(io.BytesIO(fetch(client, answer["download_url"])))
    assert table.num_rows == 3000 and len(set(table.column("document_id").to_pylist())) == 3000
    types = {name: table.schema.field(name).type for name in ("n", "ratio", "mixed", "even")}
    assert types == {"n": pa.int64(), "ratio": pa.float64(), "mixed": pa.string(), "even": pa.bool_()}
    for row in table.to_pylist():
        i = row["n"]
        assert row["document_id"] == f"doc_{i:05d}" and row["even"] == (i % 2 == 0)
        assert row["ratio"] == (i if i % 2 else i + 0.5)
        assert json.loads(row["mixed"]) == (i if i % 2 else f"s{i}")  # mixed kinds: JSON-encoded

    whole = export(client, {"format": "csv"}, "many")
    assert whole["document_count"] == 5000
    assert fetch(client, whole["download_url"]).decode().count("\n") == 5001  # header and every row


def test_a_failed_upload_leaves_no_export(
    client: TestClient, chunks: dict[str, Any], runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_stream = runtime.blobs.put_stream

    def failing(key: str, stream: Any, content_type: str | None = None) -> Any:
        if key.endswith("vectors.parquet"):
            raise OSError("disk full")
        return put_stream(key, stream, content_type)

    monkeypatch.setattr(runtime.blobs, "put_stream", failing)
    assert_error(client.post("/v1/collections/sentences/export", json={"include_vectors": True}), 500)
    assert exported_files(runtime) == []  # the documents file went back out with the vectors'


def test_a_row_that_fits_no_column_is_a_conflict(tmp_path: Path) -> None:
    """A document written between the column pass and the write pass: refused, never dropped."""
    sink = TableSink(tmp_path / "out.parquet", "parquet", {"document_id": Column(pa.string()), "n": Column(pa.int64())})
    sink.write([], [{"document_id": "doc_1", "n": 1}])
    with pytest.raises(ConflictError):
        sink.write([], [{"document_id": "doc_2", "n": 2, "new": "field"}])
    with pytest.raises(ConflictError):
        sink.write([], [{"document_id": "doc_3", "n": "three"}])
    sink.close()
    assert pq.read_table(tmp_path / "out.parquet").to_pylist() == [{"document_id": "doc_1", "n": 1}]


def shard_members(client: TestClient, url: str) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(fetch(client, url))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_webdataset_shards_with_media(client: TestClient, chunks: dict[str, Any]) -> None:
    answer = export(
        client, {"format": "webdataset", "samples_per_shard": 4, "include_media": True, "include_lineage": True}
    )
    assert answer["format"] == "webdataset" and answer["document_count"] == 6 and answer["shard_count"] == 2
    assert answer["shard_pattern"] == "documents-{000000..000001}.tar"
    assert answer["s3_path"].endswith("/") and "/exports/" in answer["s3_path"]
    shards = answer["shards"]
    assert [(s["filename"], s["sample_count"]) for s in shards] == [
        ("documents-000000.tar", 4),
        ("documents-000001.tar", 2),
    ]
    assert answer["download_url"] == shards[0]["download_url"]
    texts = {obj: text.encode() for obj, (text, *_) in zip(chunks["objects"], ARTICLES, strict=True)}
    members: dict[str, bytes] = {}
    for shard in shards:
        got = shard_members(client, shard["download_url"])
        assert shard["file_size_bytes"] == len(fetch(client, shard["download_url"]))
        assert len(got) == 2 * shard["sample_count"]
        members.update(got)
    assert answer["file_size_bytes"] == sum(s["file_size_bytes"] for s in shards)
    for doc_id, doc in chunks["documents"].items():
        row = json.loads(members[f"{doc_id}.json"])
        assert row["text"] == doc["text"] and row["document_id"] == doc_id and len(row["lineage_chain"]) == 1
        assert members[f"{doc_id}.txt"] == texts[doc["_internal"]["lineage"]["root_object_id"]]
    media_bytes = sum(len(texts[d["_internal"]["lineage"]["root_object_id"]]) for d in chunks["documents"].values())
    assert answer["media"] == {
        "samples_with_media": 6,
        "samples_without_media": 0,
        "members_written": 6,
        "members_skipped_too_large": 0,
        "objects_not_found": 0,
        "download_failures": 0,
        "media_bytes": media_bytes,
    }


def test_webdataset_media_that_cannot_ship_is_counted(
    client: TestClient, chunks: dict[str, Any], runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for body in ({"metadata": {"note": "no source"}}, {"root_object_id": "obj_gone", "source_object_id": "obj_gone"}):
        made = client.post("/v1/collections/sentences/documents", json=body)
        assert made.status_code == 200, made.text
    monkeypatch.setattr(webdataset, "MAX_MEDIA_MEMBER_BYTES", 40)  # the geology article (63 bytes) is too large
    iter_chunks = runtime.blobs.iter_chunks

    def failing(key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The French article's file breaks off after its first bytes."""
        data = b"".join(iter_chunks(key, chunk_size))
        yield data[:5]
        if data == ARTICLES[2][0].encode():
            raise OSError("connection reset")
        yield data[5:]

    monkeypatch.setattr(runtime.blobs, "iter_chunks", failing)
    answer = export(client, {"format": "webdataset", "include_media": True})
    assert answer["document_count"] == 8 and answer["shard_count"] == 1
    assert answer["shard_pattern"] == "documents-000000.tar"
    members = shard_members(client, answer["download_url"])
    media = {name: body for name, body in members.items() if not name.endswith(".json")}
    assert sum(name.endswith(".json") for name in members) == 8
    assert list(media.values()) == [ARTICLES[1][0].encode()] * 2  # only the baking article's two sentences
    assert answer["media"] == {
        "samples_with_media": 2,
        "samples_without_media": 6,
        "members_written": 2,
        "members_skipped_too_large": 3,
        "objects_not_found": 1,
        "download_failures": 1,
        "media_bytes": 2 * len(ARTICLES[1][0]),
    }

    nothing = export(client, {"format": "webdataset", "filters": {"field": "title", "operator": "eq", "value": "-"}})
    assert (nothing["document_count"], nothing["shard_count"], nothing["shards"][0]["sample_count"]) == (0, 1, 0)
    assert "media" not in nothing or nothing["media"] is None
    assert shard_members(client, nothing["download_url"]) == {}
