"""Writes the sample media in examples/media (run from the repository root: python -m examples.make_examples).

The files are committed; this script says how they were made and remakes them. It reuses the
test factories, so the samples carry what the extractors are tested to find: readable text in
images and frames, a spoken sentence, a PDF with a text page and a scanned page."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

from tests.media_factory import FOUR_SHOTS, soundtrack, text_image, write_video
from tests.pdf_factory import report_pages, write_pdf

OUT = Path(__file__).parent / "media"

NOTES = {
    "notes/lighthouses.md": "# Lighthouses\n\nA lighthouse marks dangerous coasts and safe harbour entrances.\n\n"
                            "Modern lenses are visible for twenty miles on a clear night.",
    "notes/glaciers.txt": "Glaciers carve deep valleys as they slowly move downhill.\n\n"
                          "Meltwater from glaciers feeds many of the world's great rivers.",
    "notes/coral-reefs.txt": "Coral reefs need warm, clear and shallow water.\n\n"
                             "They shelter a quarter of all marine species.",
}


def main() -> None:
    for name, text in NOTES.items():
        (OUT / name).parent.mkdir(parents=True, exist_ok=True)
        (OUT / name).write_text(text + "\n")
    (OUT / "images").mkdir(exist_ok=True)
    text_image("HARBOUR OPEN").save(OUT / "images/harbour-sign.png")
    text_image("NO ENTRY", size=(480, 160), font_size=56).save(OUT / "images/no-entry.jpg", quality=80)
    (OUT / "video").mkdir(exist_ok=True)
    with TemporaryDirectory() as work:
        audio, _ = soundtrack(Path(work), sum(s.seconds for s in FOUR_SHOTS))
        write_video(OUT / "video/fox.mp4", audio=audio, faststart=True)
    (OUT / "docs").mkdir(exist_ok=True)
    write_pdf(OUT / "docs/lighthouse-survey.pdf",
              report_pages(text_image("SCANNED PAGE", size=(612, 792), font_size=60), text_image("FIGURE 1")))


if __name__ == "__main__":
    main()
