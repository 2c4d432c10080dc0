"""The client commands against a real server process: ingest, its resumable re-run, watch, clean errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import API_KEY, LiveServer, run_client, start_server

NOTES = {
    "rivers.txt": "Rivers carve valleys over millions of years.\n\nThe Danube crosses ten countries.",
    "mountains.md": "# Mountains\n\nGlaciers shape the high peaks.",
    "nested/ocean.txt": "Tides follow the moon.\n\nCoral reefs need warm, clear water.\n\nWhales sing.",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("cli") / "data")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("notes")
    for name, text in NOTES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "cover.xyz").write_bytes(b"\x00\x01")  # a kind ingest does not know: reported, not sent
    return root


@pytest.fixture(scope="module")
def first_run(server: LiveServer, folder: Path) -> str:
    result = run_client(
        "ingest", str(folder), "--bucket", "notes", "--namespace", "cli", "--text-model", "wordllama", url=server.url
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _api(server: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {API_KEY}", "X-Namespace": "cli"}
    )


def _row(output: str, label: str) -> str:
    match = re.search(rf"{re.escape(label)}\s*│\s*(\S+)", output)
    assert match, f"no '{label}' row in:\n{output}"
    return match.group(1)


def test_ingest_creates_everything_and_processes_the_folder(server: LiveServer, first_run: str) -> None:
    assert "created namespace cli" in first_run
    assert "created bucket notes" in first_run
    assert "created collection notes-text (text_extractor)" in first_run
    assert _row(first_run, "objects created") == "3"
    assert _row(first_run, "files failed") == "0"  # a kind ingest does not know is left out, not failed
    assert _row(first_run, "left out (unknown kind)") == "1"
    assert "cover.xyz" in first_run and "unknown file kind" in first_run
    assert _row(first_run, "documents in notes-text") == "7"  # one per paragraph
    with _api(server) as api:
        objects = api.post("/v1/buckets/notes/objects/list", json={}).json()["results"]
        assert sorted(o["metadata"]["path"] for o in objects) == sorted(NOTES)
        documents = api.post("/v1/collections/notes-text/documents/list", json={}).json()["results"]
        assert len(documents) == 7
        assert {d["path"] for d in documents} == set(NOTES)  # passthrough of the object's path
        assert any(d["text"] == "Whales sing." for d in documents)


def test_a_rerun_skips_every_file_already_there(server: LiveServer, folder: Path, first_run: str) -> None:
    result = run_client("ingest", str(folder), "--bucket", "notes", "--namespace", "cli", url=server.url)
    assert result.returncode == 0, result.stderr
    assert _row(result.stdout, "objects created") == "0"
    assert _row(result.stdout, "already there (skipped)") == "3"
    assert "nothing new to process" in result.stdout
    with _api(server) as api:
        assert len(api.post("/v1/buckets/notes/objects/list", json={}).json()["results"]) == 3


def test_a_changed_file_is_uploaded_and_processed_alone(
    server: LiveServer, folder: Path, first_run: str, tmp_path: Path
) -> None:
    (tmp_path / "extra.txt").write_text("Deserts bloom after rain.")
    result = run_client("ingest", str(tmp_path), "--bucket", "notes", "--namespace", "cli", url=server.url)
    assert result.returncode == 0, result.stderr
    assert _row(result.stdout, "objects created") == "1"
    assert _row(result.stdout, "documents in notes-text") == "1"


def test_watch_prints_each_tier_and_the_outcome(server: LiveServer, first_run: str) -> None:
    batch_id = re.search(r"batch (btch_\w+) submitted", first_run)
    assert batch_id, first_run
    result = run_client("watch", batch_id.group(1), "--namespace", "cli", url=server.url)
    assert result.returncode == 0, result.stderr
    assert re.search(r"tier 0\s+notes-text .* 3/3 rows 7 documents\s+COMPLETED", result.stdout), result.stdout
    assert f"batch {batch_id.group(1)}: COMPLETED" in result.stdout
    assert "notes-text: 7 documents" in result.stdout


def test_the_admin_key_file_is_the_default_key(server: LiveServer, first_run: str, tmp_path: Path) -> None:
    (tmp_path / ".strataflow").mkdir()
    (tmp_path / ".strataflow" / "admin-key").write_text(API_KEY + "\n")
    batch_id = re.search(r"batch (btch_\w+) submitted", first_run)
    assert batch_id
    result = run_client("watch", batch_id.group(1), "-n", "cli", "-b", "notes", url=server.url, key=None, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("watch", "btch_missing", "-n", "cli"), "batch btch_missing was not found in any bucket"),
        (("watch", "btch_missing", "-n", "cli", "-b", "nobucket"), "not found"),
        (("ingest", "{folder}", "-b", "notes", "-n", "cli", "--collection", "nope"), "not found"),
    ],
)
def test_refusals_print_the_servers_message(
    server: LiveServer, folder: Path, first_run: str, args: tuple[str, ...], message: str
) -> None:
    result = run_client(*(a.format(folder=folder) for a in args), url=server.url)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and message in result.stderr.lower().replace("\n", " ")
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_key_and_unreachable_server_are_one_line_errors(server: LiveServer, folder: Path) -> None:
    wrong = run_client("ingest", str(folder), "-b", "notes", url=server.url, key="sk_not_a_real_key_000000000000")
    assert wrong.returncode == 1 and "Invalid or revoked API key" in wrong.stderr
    down = run_client("watch", "btch_x", url="http://127.0.0.1:9", key=API_KEY)
    assert down.returncode == 1 and "cannot reach the server at http://127.0.0.1:9" in down.stderr
    for result in (wrong, down):
        assert "Traceback" not in result.stderr + result.stdout


def test_search_shows_ranked_hits_with_their_source(server: LiveServer, first_run: str) -> None:
    result = run_client(
        "search", "singing whales", "--collection", "notes-text", "--top-k", "3", "--namespace", "cli", url=server.url
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(lines) == 3 and "Whales sing." in lines[0]  # the best hit first
    assert "obj_" in lines[0] and "chunk" in lines[0]
    missing = run_client("search", "x", "--collection", "nope", "--namespace", "cli", url=server.url)
    assert missing.returncode == 1 and "not found" in missing.stderr and "Traceback" not in missing.stderr
