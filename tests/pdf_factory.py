"""Tiny PDFs written byte by byte: text pages in Helvetica (known words, known places) and scanned pages.

A text item is (x, top, font size, text) in points from the page's top-left
corner; a scanned page is one full-page JPEG with no text layer at all.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

PAGE_W, PAGE_H = 612, 792  # US Letter, points


@dataclass
class TextPage:
    items: list[tuple[float, float, float, str]]
    bold_sizes: set[float] = field(default_factory=set)  # items in these sizes use Helvetica-Bold
    figure: tuple[Image.Image, tuple[float, float, float, float]] | None = None  # image, (x, top, w, h)


@dataclass
class ScannedPage:
    image: Image.Image


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _text_stream(page: TextPage) -> bytes:
    ops = []
    for x, top, size, text in page.items:
        font = "F2" if size in page.bold_sizes else "F1"
        baseline = PAGE_H - top - size * 0.8
        ops.append(f"BT /{font} {size:g} Tf {x:g} {baseline:.2f} Td ({_escape(text)}) Tj ET")
    return "\n".join(ops).encode("latin-1")


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _image_object(image: Image.Image) -> bytes:
    data = _jpeg(image)
    w, h = image.size
    return (
        f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceRGB "
        f"/BitsPerComponent 8 /Filter /DCTDecode /Length {len(data)} >>\nstream\n".encode()
        + data
        + b"\nendstream"
    )


def write_pdf(path: Path, pages: list[TextPage | ScannedPage]) -> Path:
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")
    pages_obj = add(b"")
    helvetica = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    kids = []
    for page in pages:
        if isinstance(page, TextPage):
            stream = _text_stream(page)
            xobjects = b""
            if page.figure is not None:
                picture, (x, top, w, h) = page.figure
                figure = add(_image_object(picture))
                stream += f"\nq {w:g} 0 0 {h:g} {x:g} {PAGE_H - top - h:g} cm /Fig0 Do Q".encode()
                xobjects = f" /XObject << /Fig0 {figure} 0 R >>".encode()
            resources = f"<< /Font << /F1 {helvetica} 0 R /F2 {bold} 0 R >>".encode() + xobjects + b" >>"
        else:
            image = add(_image_object(page.image))
            stream = f"q {PAGE_W} 0 0 {PAGE_H} 0 0 cm /Im0 Do Q".encode()
            resources = f"<< /XObject << /Im0 {image} 0 R >> >>".encode()
        content = add(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
        kids.append(
            add(
                f"<< /Type /Page /Parent {pages_obj} 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] /Resources ".encode()
                + resources
                + f" /Contents {content} 0 R >>".encode()
            )
        )
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode()
    objects[pages_obj - 1] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    ).encode()
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    path.write_bytes(out.getvalue())
    return path


def report_pages(scan: Image.Image, figure: Image.Image) -> list[TextPage | ScannedPage]:
    """Page 0: a header, two paragraphs, a table, a figure; page 1: a scan of `scan`."""
    body = 11.0
    text = TextPage(
        items=[
            (72, 72, 20.0, "Annual Lighthouse Survey"),
            (72, 110, body, "The northern lighthouse was inspected in spring and found in good repair."),
            (72, 124, body, "Its lamp was replaced with a modern lens that is visible for twenty miles."),
            (72, 170, body, "Funding for the southern station remains under review by the harbour board."),
            (72, 184, body, "A decision is expected before the winter storms arrive on the coast."),
            (72, 240, body, "Station"),
            (250, 240, body, "Keeper"),
            (420, 240, body, "Visits"),
            (72, 256, body, "North Point"),
            (250, 256, body, "Morgan"),
            (420, 256, body, "12"),
            (72, 272, body, "South Cape"),
            (250, 272, body, "Alvarez"),
            (420, 272, body, "7"),
        ],
        bold_sizes={20.0},
        figure=(figure, (72, 340, 300, 100)),
    )
    return [text, ScannedPage(scan)]
