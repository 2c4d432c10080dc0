"""A pool worker exits once the server that spawned it is gone, even when it died before the worker started.

The worker watches the parent pid the server gave it. Taking it from `getppid()` in the worker
was wrong when the server was SIGKILLed while the worker was still starting: the worker was
already re-parented by then, watched that new parent, and lived on as an orphan.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

WORKER = """
import sys, time
from strataflow.engine.runners.worker import initialise_pool_worker
initialise_pool_worker(1, None, int(sys.argv[1]))
time.sleep(60)
sys.exit(3)  # still here: the watch did not see its server gone
"""


def _run(parent: int) -> tuple[int | None, float]:
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-c", WORKER, str(parent)])
    try:
        return process.wait(timeout=45), time.monotonic() - started
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None, time.monotonic() - started


def test_a_worker_whose_server_is_already_gone_exits() -> None:
    # A pid that is not this worker's parent: the server it was told of is gone.
    code, _ = _run(parent=os.getpid() + 1_000_000)
    assert code == 0


def test_a_worker_whose_server_lives_stays() -> None:
    process = subprocess.Popen([sys.executable, "-c", WORKER, str(os.getpid())])
    try:
        time.sleep(4)  # a few rounds of the one-second watch
        assert process.poll() is None
    finally:
        process.kill()
        process.wait()
