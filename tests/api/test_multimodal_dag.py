"""The seed DAG on real media: a video decomposes into scenes, whose keyframes feed an image
collection and whose transcripts feed a text collection, every document tracing back to the video."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.helpers import wait_task
from tests.media_factory import soundtrack, write_video

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # media work is database-agnostic


def _collection(
    client: TestClient, name: str, source: dict[str, Any], extractor: str, mapping: dict[str, str], **parameters: Any
) -> str:
    response = client.post(
        "/v1/collections",
        json={
            "collection_name": name,
            "source": source,
            "feature_extractor": {
                "feature_extractor_name": extractor,
                "version": "v1",
                "input_mappings": mapping,
                "parameters": {"extractor_type": extractor, **parameters},
            },
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["collection_id"])


def _documents(client: TestClient, collection_id: str) -> list[dict[str, Any]]:
    body = client.post(f"/v1/collections/{collection_id}/documents/list?limit=200", json={}).json()
    return sorted(body["results"], key=lambda d: (d.get("start_time") or 0, d.get("chunk_index") or 0))


def test_video_to_scenes_frames_and_transcripts(client: TestClient, namespace: dict[str, Any], tmp_path: Path) -> None:
    audio, _ = soundtrack(tmp_path, 8.0)
    video = write_video(tmp_path / "clip.mp4", audio=audio)
    schema = {"properties": {"clip": {"type": "video"}, "title": {"type": "string"}}}
    bucket_id = client.post("/v1/buckets", json={"bucket_name": "videos", "bucket_schema": schema}).json()["bucket_id"]
    obj = client.post(
        "/v1/buckets/videos/objects",
        json={
            "blobs": [
                {
                    "property": "clip",
                    "type": "video",
                    "content_type": "video/mp4",
                    "filename": "clip.mp4",
                    "data": base64.b64encode(video.read_bytes()).decode(),
                }
            ],
            "metadata": {"title": "demo"},
        },
    ).json()

    scenes = _collection(
        client,
        "scenes",
        {"type": "bucket", "bucket_ids": [bucket_id]},
        "multimodal_extractor",
        {"video": "clip"},
        split_method="scene",
        run_transcription=True,
        run_ocr=False,
    )
    frames = _collection(
        client,
        "frames",
        {"type": "collection", "collection_ids": [scenes]},
        "image_extractor",
        {"image": "thumbnail_url"},
    )
    words = _collection(
        client,
        "transcripts",
        {"type": "collection", "collection_ids": [scenes]},
        "text_extractor",
        {"text": "transcription"},
        split_by="words",
        chunk_size=3,
        model="minilm",
    )

    batch = client.post("/v1/buckets/videos/batches", json={"object_ids": [obj["object_id"]]}).json()
    task = client.post(f"/v1/buckets/videos/batches/{batch['batch_id']}/submit", json={}).json()
    final = wait_task(client, task["task_id"], timeout=300)
    done = client.get(f"/v1/buckets/videos/batches/{batch['batch_id']}").json()
    assert final["status"] in ("COMPLETED", "COMPLETED_WITH_ERRORS"), done
    assert done["dag_tiers"] == [[scenes], sorted([frames, words])]

    segments = _documents(client, scenes)
    assert [(round(s["start_time"], 1), round(s["end_time"], 1)) for s in segments] == [
        (0.0, 2.0),
        (2.0, 4.0),
        (4.0, 6.0),
        (6.0, 8.0),
    ]
    spoken = " ".join(s.get("transcription") or "" for s in segments).lower()
    assert "quick" in spoken and "fox" in spoken
    blobs = {b["field"]: b for b in segments[1]["document_blobs"]}
    assert {"video_segment_url", "thumbnail_url"} <= set(blobs)
    signed = client.get(
        f"/v1/collections/{scenes}/documents/{segments[1]['document_id']}?return_presigned_urls=true"
    ).json()
    thumb = next(b for b in signed["document_blobs"] if b["field"] == "thumbnail_url")
    signed_url = urlsplit(thumb["presigned_url"])  # the stored keyframe is a real JPEG behind a signed URL
    picture = client.get(f"{signed_url.path}?{signed_url.query}", headers={"Authorization": ""})
    assert picture.status_code == 200 and picture.content[:3] == b"\xff\xd8\xff"

    frame_docs = _documents(client, frames)
    assert len(frame_docs) == 4
    for frame in frame_docs:
        lineage = frame["_internal"]["lineage"]
        assert lineage["root_object_id"] == obj["object_id"] and lineage["source_collection_id"] == scenes
        assert [step["collection_id"] for step in lineage["chain"]] == [scenes, frames]
    assert "STRATAFLOW" in " ".join(f.get("ocr_text") or "" for f in frame_docs).upper()

    transcript_docs = _documents(client, words)
    assert any("fox" in d["text"].lower() for d in transcript_docs)
    tree = client.get(f"/v1/objects/{obj['object_id']}/decomposition-tree").json()
    assert tree["object_id"] == obj["object_id"]
