"""`make bench` / `python -m bench`: run every benchmark, then gather their figures.

Each benchmark script measures its figures together with a baseline in the same
run and writes bench/results/<name>.json. This runs them one after another (they
must not share the CPU with each other), then writes bench/results/latest.json
and prints every figure. `python -m bench uploads batches` runs only those.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
BENCHMARKS = ["uploads", "text_extraction", "batches", "media", "retrieval", "engine"]


def main(names: list[str]) -> int:
    chosen = names or BENCHMARKS
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    failed = []
    for name in chosen:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(HERE / f"{name}.py")], check=False)
        print(f"== {name}: exit {done.returncode} after {time.monotonic() - started:.0f} s", flush=True)
        if done.returncode:
            failed.append(name)
    gathered = {}
    for name in BENCHMARKS:
        path = RESULTS / f"{name}.json"
        if path.exists():
            gathered[name] = json.loads(path.read_text())
    (RESULTS / "latest.json").write_text(json.dumps(gathered, indent=2))
    for name, figures in gathered.items():
        print(f"\n{name}")
        for key, value in (figures.items() if isinstance(figures, dict) else []):
            print(f"  {key:<44} {json.dumps(value)[:80]}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
