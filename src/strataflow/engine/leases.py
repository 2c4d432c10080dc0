"""Who holds a lease, and whether that holder is provably gone.

Tiers and background jobs are leased to a process named `host:pid`. A lease
normally ends by expiring; but when its holder ran on this very machine and
that process no longer exists, waiting out the lease only delays recovery, so
the work may be taken at once.
"""

from __future__ import annotations

import os
import socket


def process_owner() -> str:
    """This process's name as a lease holder."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_dead(owner: str | None) -> bool:
    """True only when the holder ran on this host and its process is gone (never guess for other hosts)."""
    if not owner or ":" not in owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, but someone else's
        return False
    return False
