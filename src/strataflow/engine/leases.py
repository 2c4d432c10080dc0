"""Who holds a lease, and whether that holder is provably gone.

Tiers and background jobs are leased to a process. A holder is named by an
instance id drawn at random when the process starts, not by `host:pid`: two
containers sharing a hostname (Docker `--network host`, a Kubernetes
`hostNetwork` pod) each have their own PID namespace, where both workers may
well be PID 1, and `host:pid` would name them alike.

A lease normally ends by expiring. When its holder ran on this very machine,
in this very PID namespace, and that PID no longer exists, waiting out the
lease only delays recovery, so the work may be taken at once. "This machine"
is the kernel's boot id, "this PID namespace" the inode of /proc/self/ns/pid;
both are recorded with the holder, and the fast path is taken only when both
match. Anything less certain waits for the lease. (The kernel may give a new
PID namespace the inode of one that is gone; every holder recorded in the
gone one is dead, so that can only make a live-looking PID wait, never make a
live holder look dead.)

A claim also carries a fence token (a column of the leased row that grows by
one with each claim); see `engine/fencing.py`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_PID_NAMESPACE = "/proc/self/ns/pid"
_HOST_CHARS = 48  # the holder must fit the 128-character lease_owner column


def node_key() -> str | None:
    """This kernel boot and PID namespace, as 12 hex digits; None when either cannot be read."""
    try:
        boot = _BOOT_ID.read_text().strip()
        namespace = os.readlink(_PID_NAMESPACE)
    except OSError:
        return None
    if not boot or not namespace:
        return None
    return hashlib.sha256(f"{boot}/{namespace}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Holder:
    """A lease holder: `host:pid:instance:node` (node `-` when unknown)."""

    host: str
    pid: int
    instance: str
    node: str | None

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.instance}:{self.node or '-'}"

    @classmethod
    def parse(cls, owner: str | None) -> Holder | None:
        """The holder a lease names; None for anything else (an owner from before instance ids)."""
        parts = (owner or "").rsplit(":", 3)
        if len(parts) != 4 or not parts[1].isdigit() or not parts[2]:
            return None
        return cls(parts[0], int(parts[1]), parts[2], None if parts[3] == "-" else parts[3])


_this: Holder | None = None


def this_process() -> Holder:
    """This process as a lease holder; a forked child draws its own instance id."""
    global _this  # one identity per process, made on first use
    if _this is None or _this.pid != os.getpid():
        _this = Holder(socket.gethostname()[:_HOST_CHARS], os.getpid(), secrets.token_hex(6), node_key())
    return _this


def process_owner() -> str:
    """This process's name as a lease holder."""
    return str(this_process())


def owner_is_dead(owner: str | None) -> bool:
    """True only when the holder ran in this boot and PID namespace and its PID is gone.

    Never a guess: an owner from another host or another PID namespace (a container with
    the same hostname), or one whose identity could not be read, is alive until its lease ends.
    """
    holder, me = Holder.parse(owner), this_process()
    if holder is None or holder.node is None or holder.node != me.node or holder.instance == me.instance:
        return False
    if holder.pid == me.pid:
        return True  # this PID is ours now, so the process that held it before is gone
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, but someone else's
        return False
    return _is_zombie(holder.pid)


def _is_zombie(pid: int) -> bool:
    """A process that exited and waits for its parent to reap it (it can hold nothing any more).

    Read from /proc only when /proc shows this PID namespace (its `self` is our PID).
    """
    try:
        if Path("/proc/self").resolve().name != str(os.getpid()):
            return False
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return bool(state) and state[0] in ("Z", "X")
