"""One batch of good and broken files through four real collections: each broken file fails alone.

The batch goes through the text, multimodal, image and document-graph
extractors on the real worker pool. Every bad object must come back as one
`validation` failure with a message saying what is wrong with it, the pool
must survive (a crashed worker would show up as a `resource` failure and a new
pool), and every good object must have its documents.
"""

from __future__ import annotations

import base64
import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from strataflow.engine.runners.local import LocalRunner
from tests.helpers import wait_task
from tests.media_factory import AUDIO_RATE, SENTENCE, Shot, tone, write_video
from tests.pdf_factory import TextPage, write_pdf

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

SCHEMA = {
    "properties": {
        "content": {"type": "text"},
        "clip": {"type": "video"},
        "photo": {"type": "image"},
        "doc": {"type": "pdf"},
    }
}
TWO_SHOTS = (Shot(1.0, (20, 40, 160)), Shot(1.0, (250, 250, 250)))


def _png(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _audio_only_mp4(path: Path) -> bytes:
    """An MP4 holding one AAC track and no video stream at all."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=AUDIO_RATE)
        stream.layout = "mono"
        samples = tone(1.0)
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(
                samples[start : start + 1024].reshape(1, -1).copy(), format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path.read_bytes()


def _files(work: Path) -> dict[str, tuple[str, str, bytes]]:
    """name -> (bucket property, content type, bytes). Names starting 'good' are valid."""
    video = write_video(work / "clip.mp4", TWO_SHOTS, faststart=True).read_bytes()
    audio_only = _audio_only_mp4(work / "tone.mp4")
    pdf = write_pdf(
        work / "doc.pdf",
        [
            TextPage(
                items=[
                    (72, 72, 20.0, "Harbour Report"),
                    (72, 110, 11.0, "The northern lighthouse was inspected in spring."),
                ],
                bold_sizes={20.0},
            )
        ],
    ).read_bytes()
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 10)).save(jpeg, format="JPEG")
    return {
        "good-text": ("content", "text/plain", SENTENCE.encode()),
        "good-video": ("clip", "video/mp4", video),
        "good-photo": ("photo", "image/png", _png()),
        "good-pdf": ("doc", "application/pdf", pdf),
        "latin1-text": ("content", "text/plain", "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e".encode("latin-1")),
        "empty-video": ("clip", "video/mp4", b""),
        "truncated-video": ("clip", "video/mp4", video[: len(video) // 3]),
        "audio-only-video": ("clip", "video/mp4", audio_only),
        "png-as-pdf": ("doc", "application/pdf", _png()),
        "truncated-pdf": ("doc", "application/pdf", pdf[: len(pdf) // 2]),
        "text-as-image": ("photo", "image/jpeg", b"this is not a picture at all\n" * 20),
        "truncated-photo": ("photo", "image/jpeg", jpeg.getvalue()[:200]),
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
    # A data: URI carries exact bytes for every type, including text that is not UTF-8.
    uri = f"data:{content_type};base64,{base64.b64encode(data).decode()}"
    response = client.post(
        "/v1/buckets/mixed/objects",
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


def test_broken_files_fail_alone_with_clear_categories(
    client: TestClient, namespace: dict[str, Any], tmp_path: Path, shared_runner: LocalRunner
) -> None:
    bucket_id = client.post("/v1/buckets", json={"bucket_name": "mixed", "bucket_schema": SCHEMA}).json()["bucket_id"]
    collections = {
        "content": _collection(client, "texts", bucket_id, "text_extractor", {"text": "content"}, model="minilm"),
        "clip": _collection(
            client,
            "scenes",
            bucket_id,
            "multimodal_extractor",
            {"video": "clip"},
            split_method="scene",
            run_transcription=False,
            run_ocr=False,
        ),
        "photo": _collection(client, "photos", bucket_id, "image_extractor", {"image": "photo"}, run_ocr=False),
        "doc": _collection(client, "pages", bucket_id, "document_graph_extractor", {"pdf": "doc"}, run_ocr=False),
    }
    files = _files(tmp_path)
    ids = {name: _object(client, prop, mime, data) for name, (prop, mime, data) in files.items()}
    names = {object_id: name for name, object_id in ids.items()}

    batch = client.post("/v1/buckets/mixed/batches", json={"object_ids": list(ids.values())}).json()
    pool_before = shared_runner._executor()
    task = client.post(f"/v1/buckets/mixed/batches/{batch['batch_id']}/submit", json={}).json()
    # Generous bound: a hang would otherwise block the suite; the work itself takes seconds.
    assert wait_task(client, task["task_id"], timeout=240)["status"] == "COMPLETED_WITH_ERRORS"
    done = client.get(f"/v1/buckets/mixed/batches/{batch['batch_id']}").json()
    assert done["status"] == "COMPLETED_WITH_ERRORS"

    bad = {name for name in files if not name.startswith("good")}
    failed = client.get(f"/v1/buckets/mixed/batches/{batch['batch_id']}/failed-documents?limit=100").json()
    by_name = {names[f["object_id"]]: f for f in failed["results"]}
    assert failed["total"] == len(failed["results"]) == len(bad), failed  # one failure per bad object
    assert set(by_name) == bad
    for name, failure in by_name.items():
        prop = files[name][0]
        assert failure["collection_id"] == collections[prop], name
        assert failure["error_type"] == "validation" and failure["is_transient"] is False, (name, failure)
    assert done["error_summary"] == {"validation": len(bad)}
    # The message names the problem, so a user can fix the file without reading logs.
    messages = {name: f["error_message"].lower() for name, f in by_name.items()}
    assert "utf-8" in messages["latin1-text"]
    assert "empty" in messages["empty-video"]
    assert "no video" in messages["audio-only-video"], messages["audio-only-video"]
    assert "not a pdf" in messages["png-as-pdf"]
    assert "truncated or corrupt" in messages["truncated-video"]
    assert "damaged pdf" in messages["truncated-pdf"]
    assert "not a usable image" in messages["text-as-image"]
    assert "truncated" in messages["truncated-photo"]
    # ... and never where the server keeps its scratch files (PIL quotes the full path it was given).
    assert not [m for m in messages.values() if str(tmp_path).lower() in m or "/rows/" in m], messages

    # The pool that ran the batch is the one that started it: no worker died on the bad bytes.
    assert shared_runner._executor() is pool_before
    for prop, collection_id in collections.items():
        documents = client.post(f"/v1/collections/{collection_id}/documents/list?limit=100", json={}).json()
        roots = {d["_internal"]["lineage"]["root_object_id"] for d in documents["results"]}
        assert roots == {ids[f"good-{_GOOD[prop]}"]}, (prop, [names.get(r) for r in roots])


_GOOD = {"content": "text", "clip": "video", "photo": "photo", "doc": "pdf"}
