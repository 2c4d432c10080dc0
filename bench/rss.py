"""Resident memory of this process and of its runner's worker processes, sampled while work runs.

Sampling /proc every 100 ms instead of reading VmHWM: the high-water mark of this
process includes set-up (100,000 object rows built in Python), which is not the
batch's doing, and worker processes have no single high-water mark to read.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Self


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def workers_mb() -> float:
    """Summed RSS of the live child processes (the local runner's pool)."""
    return sum(rss_mb(child.pid) for child in multiprocessing.active_children() if child.pid)


class RssSampler:
    """Peak RSS of this process and of its child processes while inside the `with` block."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.peak_self = self.peak_workers = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_self = max(self.peak_self, rss_mb(os.getpid()))
            self.peak_workers = max(self.peak_workers, workers_mb())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
