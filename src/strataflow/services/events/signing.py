"""The contract's delivery signature: `X-Mixpeek-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The HMAC is keyed by the webhook's signing secret over `"<t>."` followed by the raw body, so a
receiver recomputes it from exactly the bytes it got, and refuses an old `t` to stop replays.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Mixpeek-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
