"""`make bench` / `python -m bench`: run every benchmark, then print and write one table.

Each benchmark script measures its figures together with a baseline in the same
run and writes bench/results/<name>.json. This runs them one after another (they
must not share the CPU with each other), then writes bench/results/latest.json
and latest.md and prints the table (bench/report.py). `python -m bench uploads api`
runs only those; the table still shows every result file present.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.report import write_and_print

HERE = Path(__file__).parent
BENCHMARKS = [
    "uploads",
    "text_extraction",
    "batches",
    "media",
    "retrieval",
    "api",
    "load",
    "engine",
    "clusters",
    "taxonomies",
    "vision",
    "events",
]


def main(names: list[str]) -> int:
    chosen = names or BENCHMARKS
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    failed = []
    began = time.monotonic()
    for name in chosen:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"== {name} (load average {load})", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(HERE / f"{name}.py")], check=False)
        print(f"== {name}: exit {done.returncode} after {time.monotonic() - started:.0f} s", flush=True)
        if done.returncode:
            failed.append(name)
    write_and_print()
    print(
        f"ran {', '.join(chosen)} in {time.monotonic() - began:.0f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
