"""What a test's worker runs instead of `run_extraction`: the real one, unless a row is poison.

A row whose id starts with "poison" ends the worker process at once (os._exit), as the
kernel's OOM killer or a native crash would: no exception, no answer. Lives in its own
module because the local pool's spawned workers import it by name.
"""

from __future__ import annotations

import os

from strataflow.engine.runners.base import ExtractionCall
from strataflow.engine.runners.worker import run_extraction
from strataflow.extractors.base import RowResult


def die_on_poison(call: ExtractionCall) -> list[RowResult]:
    if any(row.row_id.startswith("poison") for row in call.inputs):
        os._exit(70)
    return run_extraction(call)
