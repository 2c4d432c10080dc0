"""Resource bombs fail their row, not the machine (issue 14, item 4).

Small files that declare something huge: a 620-byte PDF with a 6000 x 6000-point page
(1.4 GB rendered), a 2 KB video claiming 10^6 s (2 million planned segments), a PNG of
20,000 x 20,000 pixels, a GIF of 2,000 frames, a text blob over the text cap, a real video
cut into more segments than the cap. Each goes through a real collection on the real
worker pool next to a good file of its kind: the bomb fails as a permanent `validation`
failure naming the cap, the good file gets its documents, and no worker dies.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.config import Settings
from strataflow.engine.runners.local import LocalRunner
from tests.bomb_factory import frame_bomb_gif, huge_page_pdf, long_claim_video, pixel_bomb_png
from tests.conftest import ADMIN_KEY
from tests.helpers import wait_task
from tests.media_factory import SENTENCE, Shot, text_image, write_video
from tests.pdf_factory import TextPage, write_pdf

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

TEXT_MAX_BYTES = 4096
VIDEO_MAX_SEGMENTS = 10
SCHEMA = {
    "properties": {
        "content": {"type": "text"},
        "clip": {"type": "video"},
        "photo": {"type": "image"},
        "doc": {"type": "pdf"},
    }
}


@pytest.fixture
def settings(backend: str, tmp_path: Path) -> Settings:
    # Two caps low enough for small test files; the others at their defaults.
    return Settings(
        data_dir=tmp_path / "data",
        api_key=ADMIN_KEY,
        task_poll_interval_s=0.05,
        text_max_bytes=TEXT_MAX_BYTES,
        video_max_segments=VIDEO_MAX_SEGMENTS,
    )


def _files(work: Path) -> dict[str, tuple[str, str, bytes]]:
    """name -> (bucket property, content type, bytes). Names starting 'good' are within every cap."""
    good_photo = work / "good.png"
    text_image("HARBOUR", size=(320, 120)).save(good_photo)
    return {
        "good-text": ("content", "text/plain", SENTENCE.encode()),
        "good-video": ("clip", "video/mp4", write_video(work / "good.mp4", (Shot(2.0, (20, 40, 160)),)).read_bytes()),
        "good-photo": ("photo", "image/png", good_photo.read_bytes()),
        "good-pdf": (
            "doc",
            "application/pdf",
            write_pdf(
                work / "good.pdf",
                [TextPage(items=[(72, 72, 11.0, "The northern lighthouse was inspected in spring.")])],
            ).read_bytes(),
        ),
        "huge-page-pdf": ("doc", "application/pdf", huge_page_pdf(work / "bomb.pdf").read_bytes()),
        "long-claim-video": ("clip", "video/x-matroska", long_claim_video(work / "claim.mkv").read_bytes()),
        "many-segments-video": ("clip", "video/mp4", write_video(work / "long.mp4").read_bytes()),  # 8 s
        "pixel-bomb-png": ("photo", "image/png", pixel_bomb_png(work / "bomb.png").read_bytes()),
        "frame-bomb-gif": ("photo", "image/gif", frame_bomb_gif(work / "frames.gif").read_bytes()),
        "huge-text": ("content", "text/plain", (SENTENCE + " ").encode() * (TEXT_MAX_BYTES // len(SENTENCE) + 5)),
    }


def _collection(
    client: TestClient, name: str, bucket_id: str, extractor: str, mapping: dict[str, str], **parameters: Any
) -> str:
    response = client.post(
        "/v1/collections",
        json={
            "collection_name": name,
            "source": {"type": "bucket", "bucket_ids": [bucket_id]},
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


def _object(client: TestClient, prop: str, content_type: str, data: bytes) -> str:
    uri = f"data:{content_type};base64,{base64.b64encode(data).decode()}"
    response = client.post(
        "/v1/buckets/bombs/objects",
        json={
            "blobs": [
                {
                    "property": prop,
                    "type": SCHEMA["properties"][prop]["type"],
                    "data": uri,
                    "content_type": content_type,
                }
            ]
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["object_id"])


# What each bomb's failure must say: the cap, or (for a header that lies) the lie.
EXPECTED = {
    "huge-page-pdf": "STRATAFLOW_PDF_MAX_PAGE_PIXELS",
    "long-claim-video": "declares 1000000.0 s but its data ends at 1.0 s",
    "many-segments-video": "STRATAFLOW_VIDEO_MAX_SEGMENTS",
    "pixel-bomb-png": "STRATAFLOW_IMAGE_MAX_PIXELS",
    "frame-bomb-gif": "STRATAFLOW_IMAGE_MAX_FRAMES",
    "huge-text": "STRATAFLOW_TEXT_MAX_BYTES",
}


def test_each_bomb_fails_its_row_naming_the_cap(
    client: TestClient, namespace: dict[str, Any], tmp_path: Path, shared_runner: LocalRunner
) -> None:
    bucket_id = client.post("/v1/buckets", json={"bucket_name": "bombs", "bucket_schema": SCHEMA}).json()["bucket_id"]
    collections = {
        "content": _collection(client, "texts", bucket_id, "text_extractor", {"text": "content"}, model="minilm"),
        "clip": _collection(
            client,
            "segments",
            bucket_id,
            "multimodal_extractor",
            {"video": "clip"},
            time_split_interval=0.5,
            run_visual_descriptor=False,
        ),
        "photo": _collection(client, "photos", bucket_id, "image_extractor", {"image": "photo"}, run_ocr=False),
        "doc": _collection(client, "pages", bucket_id, "document_graph_extractor", {"pdf": "doc"}, run_ocr=False),
    }
    files = _files(tmp_path)
    ids = {name: _object(client, prop, mime, data) for name, (prop, mime, data) in files.items()}
    names = {object_id: name for name, object_id in ids.items()}

    batch = client.post("/v1/buckets/bombs/batches", json={"object_ids": list(ids.values())}).json()
    pool_before = shared_runner._executor()
    task = client.post(f"/v1/buckets/bombs/batches/{batch['batch_id']}/submit", json={}).json()
    assert wait_task(client, task["task_id"], timeout=300)["status"] == "COMPLETED_WITH_ERRORS"

    failed = client.get(f"/v1/buckets/bombs/batches/{batch['batch_id']}/failed-documents?limit=100").json()
    by_name = {names[f["object_id"]]: f for f in failed["results"]}
    assert set(by_name) == set(EXPECTED), by_name
    for name, failure in by_name.items():
        assert failure["error_type"] == "validation" and failure["is_transient"] is False, (name, failure)
        assert EXPECTED[name] in failure["error_message"], (name, failure["error_message"])
        assert failure["collection_id"] == collections[files[name][0]]
    assert shared_runner._executor() is pool_before  # no worker died on the way
    for prop, collection_id in collections.items():
        documents = client.post(f"/v1/collections/{collection_id}/documents/list?limit=100", json={}).json()
        good = {ids[name] for name, (kind, _, _) in files.items() if kind == prop and name.startswith("good")}
        assert {d["_internal"]["lineage"]["root_object_id"] for d in documents["results"]} == good, prop
