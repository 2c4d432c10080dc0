"""Background loops: threads that run pending work, then sleep until woken or a poll interval passes.

The job runner and the tier scheduler are both such loops; this holds what they
share, so starting, stopping, restarting and waking behave the same in both.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("strataflow.loops")


class PollingLoop:
    """Subclasses implement `run_pending()`: do what is runnable now, return how much ran."""

    def __init__(self, name: str, threads: int, poll_interval_s: float) -> None:
        self.name = name
        self.thread_count = threads
        self.poll_interval_s = poll_interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def run_pending(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        self._stop.clear()  # may follow a stop(): the new threads must run
        self._threads = [t for t in self._threads if t.is_alive()]
        for index in range(self.thread_count):
            self.spawn(self._loop, f"{self.name}-{index}")

    def spawn(self, target: object, name: str) -> None:
        """Start a thread that lives as long as the loop (joined by `stop`)."""
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def notify(self) -> None:
        """Work was just queued in this process: run it now rather than at the next poll."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.run_pending() == 0:
                    self._wake.wait(self.poll_interval_s)
                    self._wake.clear()
            except Exception:  # the loop must survive a broken database connection
                log.exception("%s loop error", self.name)
                self._stop.wait(self.poll_interval_s)
