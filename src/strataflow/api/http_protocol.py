"""uvicorn's httptools protocol, handing a request body to the app without copying it.

uvicorn (0.54) gathers each piece of a body the parser gives it into a fresh
`bytearray`, then copies that into `bytes` for the app: two copies of every
byte, into memory the process had just been given, so every page of it was
faulted in anew (about 340 minor faults per MiB). For a presigned PUT that was
most of the event loop's time: a bare app draining a 256 MiB body under uvicorn
cost 1.3 ms of CPU per MiB and ran at about 750 MiB/s here; with the piece
passed on as it came, 0.35 ms/MiB and over 2,000 MiB/s (issue 24,
bench/README.md). The event loop is the thread that receives every byte of an
upload, so its time per MiB is the PUT's ceiling.

The piece the parser hands over is a `bytes` of its own, and uvicorn's
`receive` wraps the pending body in `bytes(...)`, which returns a `bytes` as it
is. So when nothing is pending, the piece becomes the pending body; when the app
has not yet taken what is pending, uvicorn's own path joins them as before.
Flow control is unchanged: reading pauses when the pending body passes the same
high-water mark.
"""

from __future__ import annotations

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class PassThroughBodyProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` whose request bodies reach the app as the parser's own pieces."""

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle.body or cycle.response_complete or (self.parser.should_upgrade() and self._should_upgrade()):
            super().on_body(body)  # a piece already waits, or the body is not for the app: uvicorn's path
            return
        cycle.body = body  # type: ignore[assignment]  # `receive` passes a bytes on with no copy
        if len(body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()
