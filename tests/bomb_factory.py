"""Small files that ask a worker for a lot: the inputs of the resource-bomb tests (issue 14, item 4).

Each is a few KB on disk and declares something huge in its header: a page of 6000 x 6000
points, a video of a million seconds, a picture of 20,000 x 20,000 pixels, a GIF of thousands
of frames. Made here, in the test run, never stored in the repository.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from PIL import Image

from tests.media_factory import Shot, write_video

CLAIMED_SECONDS = 1_000_000


def huge_page_pdf(path: Path, points: int = 6000) -> Path:
    """A one-page PDF, a few hundred bytes, whose page is `points` x `points` (83 x 83 inches)."""
    content = b"BT /F1 48 Tf 100 100 Td (a very large page with a little text on it) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {points} {points}] "
            "/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
        ).encode(),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def long_claim_video(path: Path, claimed_seconds: int = CLAIMED_SECONDS) -> Path:
    """A one-second Matroska video (about 2 KB) whose segment header claims `claimed_seconds`.

    Matroska keeps the duration as one float (element 0x4489, in milliseconds at the default
    timecode scale), which FFmpeg reports as the file's duration without reading the data.
    """
    write_video(path, (Shot(1.0, (20, 40, 160)),))
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Duration, an 8-byte float
    if at == -1:
        raise ValueError(f"{path.name} has no 8-byte Matroska duration to rewrite")
    struct.pack_into(">d", data, at + 3, claimed_seconds * 1000.0)
    path.write_bytes(bytes(data))
    return path


def pixel_bomb_png(path: Path, side: int = 20_000) -> Path:
    """A grey PNG of `side` x `side` pixels: zeros compress to a few hundred KB, decode to side² bytes."""
    row = b"\x00" + bytes(side)  # filter byte + one grey row
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def frame_bomb_gif(path: Path, frames: int = 2_000) -> Path:
    """An animated GIF of `frames` tiny frames, each a different shade so none are merged."""
    pictures = [Image.new("L", (4, 4), i % 256) for i in range(frames)]
    pictures[0].save(path, format="GIF", save_all=True, append_images=pictures[1:], duration=10, optimize=False)
    return path
