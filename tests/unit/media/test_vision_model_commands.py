"""`strataflow models list | import | pull` as an operator runs them (typer's runner, in process).

`pull` is tested against a local server that answers like a model hub (a repository listing
and `resolve` URLs that redirect to the file), reached through the outbound guard because the
operator's allow list names it. No real hub is reachable here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strataflow.cli import app
from strataflow.config import Settings
from strataflow.extractors.vision.pull import PullFailed, pull_model
from tests import vision_factory as vf

runner = CliRunner()


def said(result: object) -> str:
    """What the operator reads: the output, or the one-line error `strataflow` prints for a refusal."""
    error = getattr(result, "exception", None)
    message = getattr(error, "message", "") if error is not None else ""
    return " ".join(f"{getattr(result, 'output', '')} {message}".split())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vf.make_clip(tmp_path_factory.mktemp("source") / "clip-tiny", seed=5)


def _hub(folder: Path) -> ThreadingHTTPServer:
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    class Hub(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            listing = "/api/models/acme/clip-tiny/revision/main"
            if self.path == listing:
                body = json.dumps({"siblings": [{"rfilename": n} for n in [*files, "README.md"]]}).encode()
                return self._send(200, body, "application/json")
            prefix = "/acme/clip-tiny/resolve/main/"
            if self.path.startswith(prefix) and self.path[len(prefix) :] in files:
                self.send_response(302)  # like a hub sending the client on to its file store
                self.send_header("Location", "/store/" + self.path[len(prefix) :])
                self.end_headers()
                return None
            if self.path.startswith("/store/") and self.path[7:] in files:
                return self._send(200, files[self.path[7:]], "application/octet-stream")
            return self._send(404, b"{}", "application/json")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return ThreadingHTTPServer(("127.0.0.1", 0), Hub)


@pytest.fixture(scope="module")
def hub(checkpoint: Path) -> Iterator[str]:
    server = _hub(checkpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_list_and_import(tmp_path: Path, checkpoint: Path) -> None:
    models = tmp_path / "models"
    empty = runner.invoke(app, ["models", "list", "--models-dir", str(models)])
    assert empty.exit_code == 0 and "no vision model installed" in empty.output
    done = runner.invoke(app, ["models", "import", str(checkpoint), "--name", "tiny", "--models-dir", str(models)])
    assert done.exit_code == 0, done.output
    assert "installed tiny (clip, 16 dimensions" in said(done)
    listed = runner.invoke(app, ["models", "list", "--models-dir", str(models)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0
    row = next(line for line in listed.output.splitlines() if "tiny" in line and "clip" in line)
    assert row.split("│")[1:7] and "16" in row and "vision_tiny" in row
    again = runner.invoke(app, ["models", "import", str(checkpoint), "--name", "tiny", "--models-dir", str(models)])
    assert again.exit_code == 1 and "already installed" in said(again)


def test_pull_is_off_by_default_and_says_how_to_turn_it_on(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "pull", "acme/clip-tiny", "--models-dir", str(tmp_path)])
    assert result.exit_code == 1
    text = said(result)
    assert "model pulls are off" in text and "STRATAFLOW_MODELS_PULL=true" in text
    assert not any(tmp_path.iterdir())


def test_pull_from_a_hub_through_the_outbound_guard(tmp_path: Path, hub: str) -> None:
    settings = Settings(data_dir=tmp_path, models_pull=True, models_hub_url=hub)
    with pytest.raises(PullFailed, match="could not fetch"):  # a loopback hub is refused unless allowed
        pull_model(settings, "acme/clip-tiny")
    allowed = Settings(data_dir=tmp_path, models_pull=True, models_hub_url=hub, outbound_allow="127.0.0.1")
    lines: list[str] = []
    info = pull_model(allowed, "acme/clip-tiny", progress=lines.append)
    assert (info.name, info.dimensions, info.family) == ("clip-tiny", 16, "clip")
    assert any(line.startswith("model.safetensors:") for line in lines)
    assert not (info.path / "README.md").exists()  # only what a checkpoint needs is fetched
    with pytest.raises(PullFailed, match="not a repository name"):
        pull_model(allowed, "../etc")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["clip-tiny"]


def test_ingest_default_collections_carry_the_chosen_vision_model() -> None:
    from strataflow.cli.file_kinds import default_collections

    targets = {"text": "text", "image": "image", "video": "video"}
    chosen = {p.kind: p.parameters for p in default_collections(targets, "minilm", "tiny")}
    assert chosen["image"]["vision_model"] == chosen["media"]["vision_model"] == "tiny"
    assert "vision_model" not in chosen["text"]
    left_to_server = {p.kind: p.parameters for p in default_collections(targets, "minilm")}
    assert "vision_model" not in left_to_server["image"]  # the server's default (if any) decides
