"""Media extractor throughput on this machine: `python bench/media.py [--seconds 60] [--pages 20]`.

Video figures are seconds of video processed per wall-clock second, each next
to decoding the same file with PyAV alone in the same run (the floor any
pipeline pays); PDF figures are pages per second. Models are loaded before
timing starts. Writes bench/results/media.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script: the source tree and the test factories (tests.media_factory) come first on the path.
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import av
import numpy as np
from PIL import Image, ImageDraw

from strataflow.extractors.base import ExtractContext, ExtractorInput
from strataflow.extractors.media.transcription import load_whisper, transcribe
from strataflow.extractors.multimodal import MultimodalExtractor, MultimodalParams
from strataflow.extractors.pdf import DOCUMENT_GRAPH_EXTRACTOR, DocumentGraphParams
from strataflow.extractors.text_models import embed_texts
from tests import media_factory as mf
from tests import pdf_factory as pf

sys.path.insert(0, str(ROOT / "bench"))
from figures import Figure, print_figures, write_results

WIDTH, HEIGHT, FPS = 640, 360, 25
SHOT_SECONDS = 4.0
PARAGRAPH = (
    "Strataflow turns raw files into searchable documents. A video goes in, and scenes, frames, "
    "transcripts and the text on screen come out, each with its place in time. "
)


def make_video(path: Path, seconds: float, work: Path) -> Path:
    """640x360 H.264 + AAC: textured shots that pan (so frames differ), a hard cut every 4 s, speech."""
    rng = np.random.default_rng(7)
    textures = [
        (rng.integers(0, 64, (HEIGHT, WIDTH * 2, 3), dtype=np.uint8) + np.array(c, dtype=np.uint8))
        for c in ((40, 60, 150), (170, 60, 40), (40, 150, 70), (150, 150, 40), (90, 40, 150))
    ]
    speech = mf.read_mono(mf.speech_wav(work / "paragraph.wav", PARAGRAPH * 3))
    audio = np.resize(speech, int(seconds * mf.AUDIO_RATE)).astype(np.float32)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "26"}
        sound = container.add_stream("aac", rate=mf.AUDIO_RATE)
        sound.layout = "mono"
        for index in range(int(seconds * FPS)):
            shot = int(index / FPS // SHOT_SECONDS)
            offset = (index * 3) % WIDTH
            picture = np.ascontiguousarray(textures[shot % len(textures)][:HEIGHT, offset : offset + WIDTH])
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        mf._encode_audio(container, sound, audio)
    return path


def decode_only(path: Path) -> None:
    with av.open(str(path)) as container:
        for stream in container.streams:
            stream.thread_type = "AUTO"
        for _ in container.decode(*container.streams):
            pass


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def multimodal(extractor: MultimodalExtractor, path: Path, params: MultimodalParams) -> Callable[[], object]:
    def work() -> object:
        with tempfile.TemporaryDirectory() as scratch:
            [result] = extractor.extract(
                [ExtractorInput("bench", {"video": path})], params, ExtractContext(work_dir=Path(scratch))
            )
            if result.error is not None:
                raise RuntimeError(result.error.message)
            return result

    return work


def bench_video(seconds: float, work: Path, models_dir: Path) -> list[dict[str, object]]:
    path = make_video(work / "bench.mp4", seconds, work)
    extractor = MultimodalExtractor(models_dir=models_dir)
    load_whisper(models_dir)  # model loads are not throughput
    embed_texts(["warm up"])
    cases: list[tuple[str, Callable[[], object]]] = [
        (
            "time split 10 s, keyframe mode (stream copy) + thumbnails",
            multimodal(extractor, path, MultimodalParams(segment_mode="keyframe", run_visual_descriptor=False)),
        ),
        (
            "time split 10 s, exact mode (re-encode) + thumbnails",
            multimodal(extractor, path, MultimodalParams(run_visual_descriptor=False)),
        ),
        (
            "scene split, keyframe mode + thumbnails",
            multimodal(
                extractor,
                path,
                MultimodalParams(split_method="scene", segment_mode="keyframe", run_visual_descriptor=False),
            ),
        ),
        (
            "scene split, exact mode + thumbnails",
            multimodal(extractor, path, MultimodalParams(split_method="scene", run_visual_descriptor=False)),
        ),
        ("transcription alone (Whisper base int8, word times, VAD)", lambda: transcribe(path, models_dir, "en")),
    ]
    rows = []
    for name, work_fn in cases:
        baseline = timed(lambda: decode_only(path))
        elapsed = timed(work_fn)
        rows.append(
            {
                "case": name,
                "video_seconds": seconds,
                "wall_seconds": round(elapsed, 3),
                "video_seconds_per_second": round(seconds / elapsed, 2),
                "pyav_decode_video_seconds_per_second": round(seconds / baseline, 2),
            }
        )
    return rows


def count_pages_text(path: Path) -> float:
    """Baseline for text PDFs: pdfium opening the file and reading every page's text, nothing else."""
    import pypdfium2

    started = time.perf_counter()
    document = pypdfium2.PdfDocument(str(path))
    for page in document:
        page.get_textpage().get_text_range()
    pages = len(document)
    document.close()
    return round(pages / (time.perf_counter() - started), 2)


def bench_pdf(pages: int, work: Path) -> list[dict[str, object]]:
    text_page = pf.report_pages(Image.new("RGB", (10, 10)), Image.new("RGB", (10, 10)))[0]
    text_page.figure = None
    scan = Image.new("RGB", (1275, 1650), "white")
    draw = ImageDraw.Draw(scan)
    for line in range(12):
        draw.text(
            (150, 200 + line * 60), f"Line {line} of a scanned page about lighthouses", fill="black", font=mf.font(36)
        )
    text_pdf = pf.write_pdf(work / "text.pdf", [text_page] * pages)
    scanned_pdf = pf.write_pdf(work / "scanned.pdf", [pf.ScannedPage(scan)] * max(1, pages // 4))
    cases = [
        ("text pages, defaults (blocks, page images, crops, embeddings)", text_pdf, pages, DocumentGraphParams()),
        (
            "text pages, blocks only (no renders, no embeddings)",
            text_pdf,
            pages,
            DocumentGraphParams(store_page_images=False, generate_thumbnails=False, run_text_embedding=False),
        ),
        ("scanned pages, OCR at 300 dpi + defaults", scanned_pdf, max(1, pages // 4), DocumentGraphParams()),
    ]
    rows = []
    text_baseline = count_pages_text(text_pdf)
    for name, path, count, params in cases:

        def work_fn(path: Path = path, params: DocumentGraphParams = params) -> None:
            with tempfile.TemporaryDirectory() as scratch:
                [result] = DOCUMENT_GRAPH_EXTRACTOR.extract(
                    [ExtractorInput("bench", {"pdf": path})], params, ExtractContext(work_dir=Path(scratch))
                )
                if result.error is not None:
                    raise RuntimeError(result.error.message)

        elapsed = timed(work_fn)
        rows.append(
            {
                "case": name,
                "pages": count,
                "wall_seconds": round(elapsed, 3),
                "pages_per_second": round(count / elapsed, 2),
                "pdfium_text_pages_per_second": text_baseline if path == text_pdf else None,
            }
        )
    return rows


def figures_of(video: list[dict[str, Any]], pdf: list[dict[str, Any]]) -> list[Figure]:
    figures = [
        Figure(
            f"video_{i}",
            row["case"],
            row["video_seconds_per_second"],
            "media s/s",
            "higher",
            row["pyav_decode_video_seconds_per_second"],
            "PyAV decoding the same file, nothing else",
        )
        for i, row in enumerate(video)
    ]
    figures += [
        Figure(
            f"pdf_{i}",
            row["case"],
            row["pages_per_second"],
            "pages/s",
            "higher",
            row["pdfium_text_pages_per_second"],
            "pdfium reading each page's text" if row["pdfium_text_pages_per_second"] else "",
        )
        for i, row in enumerate(pdf)
    ]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the synthetic video")
    parser.add_argument("--pages", type=int, default=20, help="pages in the text PDF (scanned: a quarter)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        video = bench_video(args.seconds, work, work / "models")
        pdf = bench_pdf(args.pages, work)
    results = {
        "video": {"width": WIDTH, "height": HEIGHT, "fps": FPS, "codec": "h264+aac", "cut_every_s": SHOT_SECONDS},
        "video_results": video,
        "pdf_results": pdf,
    }
    figures = figures_of(video, pdf)
    print_figures(figures)
    print(f"wrote {write_results('media', figures, results)}")


if __name__ == "__main__":
    main()
