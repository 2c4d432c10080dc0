"""The one shape every benchmark reports in: a figure next to the baseline measured in the same run.

The machine is shared and noisy, so an absolute number alone says little; a
ratio against a baseline taken minutes apart on the same cores says much more.
A script builds `Figure`s and calls `write_results(name, figures, details)`,
which writes bench/results/<name>.json as

    {"benchmark": name, "when": ..., "machine": {...}, "load": {"before": [1, 5, 15 min], "after": [...]},
     "figures": [Figure as a dict, with its ratio], "details": {anything else the script wants to keep}}

`ratio` is always value / baseline, so it reads in the same direction as the
value: `better="higher"` (throughput: the closer to 1, or above, the better)
or `better="lower"` (latency, memory: the closer to 1, the better).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

RESULTS = Path(__file__).parent / "results"

# Taken when a benchmark script imports this module, i.e. before it measures anything: the load
# the other users of the machine put on it, which the figures have to be read against.
LOAD_AT_START = os.getloadavg()


@dataclass(frozen=True)
class Figure:
    key: str  # stable id for comparing runs, e.g. "put_mib_per_s"
    name: str  # what is measured, in words
    value: float
    unit: str
    better: Literal["higher", "lower"]
    baseline: float | None = None
    baseline_name: str = ""  # what the baseline is, e.g. "plain file copy of the same bytes (+fsync)"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    def to_json(self) -> dict[str, Any]:
        ratio = self.ratio
        return {**asdict(self), "ratio": None if ratio is None else round(ratio, 4)}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_results(name: str, figures: list[Figure], details: dict[str, Any] | None = None) -> Path:
    """Write bench/results/<name>.json in the common shape; returns its path."""
    document = {
        "benchmark": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load": {"before": [round(x, 2) for x in LOAD_AT_START], "after": load_average()},
        "figures": [figure.to_json() for figure in figures],
        "details": details or {},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def print_figures(figures: list[Figure]) -> None:
    """A plain listing for a script run on its own (`make bench` prints the full table)."""
    for figure in figures:
        ratio = figure.ratio
        against = f"  vs {figure.baseline:.4g} ({figure.baseline_name})" if figure.baseline is not None else ""
        shown = f"  ratio {ratio:.3f} ({figure.better} is better)" if ratio is not None else ""
        print(f"{figure.name}: {figure.value:.4g} {figure.unit}{against}{shown}")
