"""Real media for the extractor tests, made once per session: videos, speech, scans, PDFs."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from strataflow.extractors.base import ExtractContext
from tests import media_factory as mf
from tests import pdf_factory as pf


class Media:
    """Paths of the session's test files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        soundtrack, self.speech_end = mf.soundtrack(root, 8.0)
        self.video = mf.write_video(root / "four_shots.mp4", audio=soundtrack)
        self.silent_video = mf.write_video(root / "no_audio.mp4")
        self.audio = mf.write_wav(root / "track.wav", soundtrack)
        faststart = mf.write_video(root / "faststart.mp4", audio=soundtrack, faststart=True)
        self.cut_short = mf.truncate(faststart, root / "cut_short.mp4", keep_fraction=0.5)
        self.truncated = mf.truncate(self.video, root / "truncated.mp4", keep_fraction=0.3)
        self.empty = root / "empty.mp4"
        self.empty.write_bytes(b"")
        self.png_as_mp4 = root / "picture.mp4"
        mf.text_image("not a video").save(self.png_as_mp4, format="PNG")
        self.png_as_pdf = root / "picture.pdf"
        mf.text_image("not a pdf").save(self.png_as_pdf, format="PNG")
        self.pdf = pf.write_pdf(root / "report.pdf", pf.report_pages(scanned_page(), figure_picture()))
        self.truncated_pdf = mf.truncate(self.pdf, root / "truncated.pdf", keep_fraction=0.02)


def scanned_page() -> Image.Image:
    """A page as a scanner sees it: 150 dpi Letter, two lines of text, no text layer."""
    page = Image.new("RGB", (1275, 1650), (250, 250, 246))
    draw = ImageDraw.Draw(page)
    face = mf.font(40)
    draw.text((150, 200), "Scanned invoice number 4471", fill=(10, 10, 10), font=face)
    draw.text((150, 260), "Payment received with thanks.", fill=(10, 10, 10), font=face)
    return page


def figure_picture() -> Image.Image:
    """A chart-like picture with a title in it."""
    return mf.text_image("Keeper visits per year", size=(900, 300), font_size=56, background=(220, 235, 250))


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return Media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def context(tmp_path: Path) -> ExtractContext:
    return ExtractContext(work_dir=tmp_path / "work")
