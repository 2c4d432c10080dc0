"""Vision features end to end: catalogue, collection checks, batches through the engine, text and image queries.

The model is a tiny CLIP with random weights (tests/vision_factory.py), installed in the
server's models directory. What is checked is the plumbing: the feature exists only with its
model, vectors land in the index from the real batch path, a text query is embedded by the
same model's text tower (the ranking equals the one computed here from the stored vectors),
image queries of every kind find the image itself first, and video segments come back with
their times. Nothing here says anything about semantic quality.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from strataflow.app import create_app
from strataflow.cli import app as cli
from strataflow.config import Settings
from strataflow.extractors.vision import catalog
from strataflow.extractors.vision.encoder import load_encoder
from strataflow.runtime import Runtime
from tests import vision_factory as vf
from tests.conftest import ADMIN_KEY
from tests.helpers import assert_error, wait_task
from tests.live import free_port
from tests.media_factory import write_video

# SQLite only (the settings below): model work is database-agnostic.
FEATURE = "mixpeek://image_extractor@v1/vision_tiny_clip"
VIDEO_FEATURE = "mixpeek://multimodal_extractor@v1/vision_tiny_clip"
QUIET_IMAGE = {"run_ocr": False, "run_text_embedding": False, "run_perceptual_hash": False}


@pytest.fixture(scope="module")
def vision_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server-models")
    vf.make_clip(root / "tiny-clip", seed=11)
    return root


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return vf.coloured_images(tmp_path_factory.mktemp("uploads"), 4)


@pytest.fixture
def settings(tmp_path: Path, vision_models: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        api_key=ADMIN_KEY,
        task_poll_interval_s=0.05,
        models_dir_path=vision_models,
        outbound_allow="127.0.0.1",  # the image-URL query below is served from this machine
    )


@pytest.fixture
def image_server(pictures: list[Path]) -> Iterator[str]:
    class Files(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            body = pictures[int(self.path.strip("/"))].read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _collection(
    client: TestClient, name: str, bucket: str, extractor: str, mapping: dict[str, str], **extra: Any
) -> Any:
    parameters = extra.pop("parameters", {})
    return client.post(
        "/v1/collections",
        json={
            "collection_name": name,
            "source": {"type": "bucket", "bucket_ids": [bucket]},
            "feature_extractor": {
                "feature_extractor_name": extractor,
                "version": "v1",
                "input_mappings": mapping,
                "parameters": {"extractor_type": extractor, **parameters},
                **extra,
            },
        },
    )


def _upload(client: TestClient, bucket: str, prop: str, path: Path, kind: str, content_type: str) -> str:
    blob = {"property": prop, "type": kind, "content_type": content_type, "filename": path.name}
    response = client.post(
        f"/v1/buckets/{bucket}/objects",
        json={
            "blobs": [{**blob, "data": base64.b64encode(path.read_bytes()).decode()}],
            "metadata": {"name": path.stem},
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["object_id"])


def _process(client: TestClient, bucket: str, object_ids: list[str]) -> None:
    batch = client.post(f"/v1/buckets/{bucket}/batches", json={"object_ids": object_ids}).json()
    task = client.post(f"/v1/buckets/{bucket}/batches/{batch['batch_id']}/submit", json={}).json()
    final = wait_task(client, task["task_id"], timeout=240)
    assert final["status"] == "COMPLETED", client.get(f"/v1/buckets/{bucket}/batches/{batch['batch_id']}").json()


def _search(client: TestClient, collection: str, feature: str, query: Any, vectors: bool = False) -> Any:
    return client.post(
        "/v1/retrievers/execute" + ("?return_vectors=true" if vectors else ""),
        json={
            "collection_identifiers": [collection],
            "input_schema": {"query": {"type": "text", "required": False}},
            "stages": [
                {
                    "stage_name": "search",
                    "stage_type": "filter",
                    "config": {
                        "stage_id": "feature_search",
                        "parameters": {"searches": [{"feature_uri": feature, "query": query, "top_k": 20}]},
                    },
                }
            ],
            "inputs": {},
            "pagination": {"method": "offset", "page_size": 20},
        },
    )


def _hits(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return list(response.json()["documents"])


def test_catalogue_and_a_missing_model(client: TestClient, namespace: dict[str, Any]) -> None:
    entry = client.get("/v1/collections/features/extractors/image_extractor_v1").json()
    vision = next(d for d in entry["required_vector_indexes"] if d["feature_uri"] == FEATURE)
    assert vision["index"]["dimensions"] == 16 and vision["index"]["supported_inputs"] == ["image", "text"]
    multimodal = client.get("/v1/collections/features/extractors/multimodal_extractor_v1").json()
    assert VIDEO_FEATURE in {d["feature_uri"] for d in multimodal["required_vector_indexes"]}

    client.post(
        "/v1/buckets", json={"bucket_name": "pics", "bucket_schema": {"properties": {"img": {"type": "image"}}}}
    )
    refused = _collection(
        client, "one", "pics", "image_extractor", {"image": "img"}, parameters={"vision_model": "vit-l"}
    )
    body = assert_error(refused, 400, "ModelNotInstalledError")
    assert "'vit-l' is not installed" in body["error"]["message"]
    assert "strataflow models import" in body["error"]["message"]
    by_params = _collection(client, "two", "pics", "image_extractor", {"image": "img"}, params={"model": "siglip_base"})
    assert_error(by_params, 400, "ModelNotInstalledError")
    as_model = _collection(client, "three", "pics", "image_extractor", {"image": "img"}, parameters={"model": "b16"})
    assert_error(as_model, 400, "ModelNotInstalledError")
    assert client.post("/v1/collections/list", json={}).json()["results"] == []  # nothing half-made


@pytest.fixture
def served(runtime: Runtime) -> Iterator[str]:
    """The same runtime over real HTTP, for the command-line client (no second process, no second model load)."""
    port = free_port()
    config = uvicorn.Config(create_app(runtime=runtime, run_background=False), port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_images_and_video_searched_by_text_and_by_image(
    client: TestClient,
    namespace: dict[str, Any],
    settings: Settings,
    pictures: list[Path],
    image_server: str,
    served: str,
) -> None:
    schema = {"properties": {"img": {"type": "image"}, "name": {"type": "string"}}}
    assert client.post("/v1/buckets", json={"bucket_name": "pics", "bucket_schema": schema}).status_code == 200
    created = _collection(
        client,
        "photos",
        "pics",
        "image_extractor",
        {"image": "img"},
        parameters={"vision_model": "tiny-clip", **QUIET_IMAGE},
        field_passthrough=[{"source_path": "name"}],
    )
    assert created.status_code == 200, created.text
    assert created.json()["vector_indexes"][0]["feature_uri"] == FEATURE  # the primary feature
    ids = [_upload(client, "pics", "img", p, "image", "image/png") for p in pictures]
    _process(client, "pics", ids)

    # A text query: embedded by the model's text tower, ranked by cosine against the stored image vectors.
    hits = _hits(_search(client, "photos", FEATURE, "a red boat", vectors=True))
    assert len(hits) == 4
    column = "image_extractor_v1_vision_tiny_clip"
    stored = np.array([h[column] for h in hits])
    text = load_encoder(catalog.find_model(settings.models_dir, "tiny-clip")).encode_texts(["a red boat"])[0]
    assert np.allclose([h["score"] for h in hits], stored @ text, atol=1e-4)

    # Image queries find the image itself first: uploaded (data URI), by URL (outbound guard), by document.
    target = pictures[2]
    data_uri = "data:image/png;base64," + base64.b64encode(target.read_bytes()).decode()
    for query in (
        {"input_mode": "content", "value": data_uri},
        {"input_mode": "image", "image": base64.b64encode(target.read_bytes()).decode()},
        {"input_mode": "url", "url": f"{image_server}/2"},
    ):
        found = _hits(_search(client, "photos", FEATURE, query))
        assert found[0]["name"] == target.stem and found[0]["score"] > 0.999, query["input_mode"]
    reference = {"collection_id": created.json()["collection_id"], "document_id": found[0]["document_id"]}
    by_doc = _hits(_search(client, "photos", FEATURE, {"input_mode": "document", "document_ref": reference}))
    assert by_doc[0]["document_id"] == reference["document_id"]
    wrong_space = _search(
        client, "photos", "mixpeek://image_extractor@v1/visual_descriptor", {"input_mode": "content", "value": data_uri}
    )
    assert_error(wrong_space, 400)
    hybrid = client.post(
        "/v1/retrievers/execute",
        json={
            "collection_identifiers": ["photos"],
            "input_schema": {"q": {"type": "text"}},
            "stages": [
                {
                    "stage_name": "both",
                    "config": {
                        "stage_id": "hybrid_search",
                        "parameters": {"feature_uri": FEATURE, "query": "{{INPUT.q}}"},
                    },
                }
            ],
            "inputs": {"q": "a red boat"},
        },
    )
    assert len(_hits(hybrid)) == 4  # the model's ranking fused with BM25 (no text here: the model's alone)

    # The command line: a text query takes the primary (vision) feature; --image searches by picture.
    env = {"STRATAFLOW_URL": served, "STRATAFLOW_API_KEY": ADMIN_KEY, "COLUMNS": "200"}
    by_text = CliRunner().invoke(cli, ["search", "a red boat", "-c", "photos", "--namespace", "main"], env=env)
    assert by_text.exit_code == 0, by_text.output
    assert "4 hit(s)" in by_text.output and "vision_tiny_clip" in by_text.output
    by_picture = CliRunner().invoke(
        cli, ["search", "-c", "photos", "--image", str(target), "--namespace", "main", "-k", "1"], env=env
    )
    assert by_picture.exit_code == 0, by_picture.output
    assert ids[2] in by_picture.output and "1.000" in by_picture.output

    # Video: segments' keyframes embedded by the same model, chosen the Mixpeek way (params.model).
    video = write_video(settings.data_dir.parent / "shots.mp4")
    client.post("/v1/buckets", json={"bucket_name": "clips", "bucket_schema": {"properties": {"v": {"type": "video"}}}})
    segments = _collection(
        client,
        "scenes",
        "clips",
        "multimodal_extractor",
        {"video": "v"},
        parameters={"time_split_interval": 2.0, "store_segments": False, "run_visual_descriptor": False},
        params={"model": "tiny-clip"},
    )
    assert segments.status_code == 200, segments.text
    assert segments.json()["feature_extractor"]["parameters"]["vision_model"] == "tiny-clip"  # stored, resolved
    _process(client, "clips", [_upload(client, "clips", "v", video, "video", "video/mp4")])
    found = _hits(_search(client, "scenes", VIDEO_FEATURE, "the sea at night", vectors=True))
    assert sorted((h["start_time"], h["end_time"]) for h in found) == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.0)]
    keyframes = np.array([h["multimodal_extractor_v1_vision_tiny_clip"] for h in found])
    text = load_encoder(catalog.find_model(settings.models_dir, "tiny-clip")).encode_texts(["the sea at night"])[0]
    assert np.allclose([h["score"] for h in found], keyframes @ text, atol=1e-4)
