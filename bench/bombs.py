"""Peak resident memory of one extraction worker on each resource bomb (issue 14, item 4).

Each bomb runs in a fresh spawned process through the worker's own entry point
(`run_extraction`, what the local pool and Ray actors call), and the figure is that
process's high-water mark (ru_maxrss), read by the parent once the child has ended:
the whole cost of the row, model loading included. Run it with a checkout's `src` first
on PYTHONPATH (and the checkout itself, for tests/bomb_factory.py) to compare checkouts:

    PYTHONPATH=src:. python bench/bombs.py [--timeout 120]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

_BOMBS: dict[str, tuple[str, dict[str, Any]]] = {
    "pdf 6000x6000 pt page at 150 dpi": ("document_graph_extractor", {"run_ocr": False, "run_text_embedding": False}),
    "video claiming 10^6 s (1 s real), 0.5 s segments": (
        "multimodal_extractor",
        {
            "time_split_interval": 0.5,
            "enable_thumbnails": False,
            "run_visual_descriptor": False,
            "store_segments": False,
        },
    ),
    "png 20000x20000 px": ("image_extractor", {"run_ocr": False, "run_text_embedding": False}),
    "gif of 2000 frames": ("image_extractor", {"run_ocr": False, "run_text_embedding": False}),
    "text of 24 MiB": ("text_extractor", {"model": "minilm"}),
}


def _make(name: str, folder: Path) -> Path:
    from tests import bomb_factory

    if name.startswith("pdf"):
        return bomb_factory.huge_page_pdf(folder / "page.pdf")
    if name.startswith("video"):
        return bomb_factory.long_claim_video(folder / "claim.mkv")
    if name.startswith("png"):
        return bomb_factory.pixel_bomb_png(folder / "bomb.png")
    return bomb_factory.frame_bomb_gif(folder / "frames.gif")


def _run(name: str, folder: str, out: Any) -> None:
    from strataflow.engine.runners.base import ExtractionCall
    from strataflow.engine.runners.worker import run_extraction
    from strataflow.extractors.base import ExtractorInput

    extractor, parameters = _BOMBS[name]
    value: Any = (
        ("The quick brown fox jumps over the lazy dog. " * 600_000)[: 24 * 1024 * 1024]
        if name.startswith("text")
        else _make(name, Path(folder))
    )
    key = {"document_graph_extractor": "pdf", "multimodal_extractor": "video", "text_extractor": "text"}.get(
        extractor, "image"
    )
    started = time.monotonic()
    [result] = run_extraction(
        ExtractionCall(extractor, "v1", parameters, [ExtractorInput("row", {key: value})], Path(folder) / "work")
    )
    outcome = (
        f"{len(result.documents)} documents"
        if result.error is None
        else (f"{result.error.category.value}: {result.error.message}")
    )
    out.send(f"{time.monotonic() - started:.1f}s {outcome}"[:300])


def _wait(pid: int, timeout: float) -> tuple[int | None, float]:
    """Exit status (None when killed for time) and peak RSS in MB of child `pid`, reaped with wait4."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    _, _, usage = os.wait4(pid, 0)
    return None, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    for name in _BOMBS:
        with tempfile.TemporaryDirectory() as folder:
            receive, send = spawn.Pipe(duplex=False)
            child = spawn.Process(target=_run, args=(name, folder, send))
            child.start()
            assert child.pid is not None
            code, peak = _wait(child.pid, args.timeout)
            if code is None:
                outcome = f"still running after {args.timeout:.0f}s (killed)"
            else:
                outcome = receive.recv() if receive.poll() else f"died (exit code {code})"
            print(f"{name:50s} peak RSS {peak:7.0f} MB  {outcome}", flush=True)


if __name__ == "__main__":
    main()
