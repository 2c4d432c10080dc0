"""Gather bench/results/*.json into one table: latest.json, latest.md and a rich table on the terminal.

Results in the common shape (bench/figures.py: a "figures" list) are shown as
they are. Any other JSON (load.json is flat key -> number) still gets rows:
every numeric leaf as a plain key/value row, so a new benchmark shows up
before anyone teaches this module about it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"
FIRST = ["uploads", "text_extraction", "batches", "media", "retrieval", "api", "load", "engine"]


@dataclass(frozen=True)
class Row:
    benchmark: str
    name: str
    value: float
    unit: str = ""
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    better: str = ""


def _leaves(data: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        yield prefix, float(data)


def rows_of(benchmark: str, data: Any) -> list[Row]:
    if isinstance(data, dict) and isinstance(data.get("figures"), list):
        return [
            Row(
                benchmark,
                f["name"],
                f["value"],
                f.get("unit", ""),
                f.get("baseline"),
                f.get("baseline_name", ""),
                f.get("ratio"),
                f.get("better", ""),
            )
            for f in data["figures"]
        ]
    skip = ("machine.",)  # cpu counts and versions are context, not figures
    return [Row(benchmark, key, value) for key, value in _leaves(data) if not key.startswith(skip)]


def gather(results: Path = RESULTS) -> dict[str, Any]:
    found = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json")) if p.stem != "latest"}
    order = [n for n in FIRST if n in found] + sorted(n for n in found if n not in FIRST)
    return {name: found[name] for name in order}


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.{digits}g}"


def _cells(row: Row) -> list[str]:
    ratio = f"{row.ratio:.3f}" if row.ratio is not None else ""
    baseline_name = row.baseline_name if row.baseline is not None else ""
    return [
        row.benchmark,
        row.name,
        _number(row.value),
        row.unit,
        _number(row.baseline),
        baseline_name,
        ratio,
        row.better,
    ]


HEADERS = ["benchmark", "figure", "value", "unit", "baseline", "baseline is (same run)", "ratio", "better"]


def _loads(gathered: dict[str, Any]) -> str:
    parts = []
    for name, data in gathered.items():
        load = data.get("load") if isinstance(data, dict) else None
        if load:
            parts.append(f"{name} {load['before'][0]:.2f}->{load['after'][0]:.2f}")
    return "1-min load average before->after each benchmark: " + ", ".join(parts) if parts else ""


def markdown(rows: list[Row], gathered: dict[str, Any]) -> str:
    escape = str.maketrans({"|": "\\|"})
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(c.translate(escape) for c in _cells(r)) + " |" for r in rows]
    note = _loads(gathered)
    return "\n".join(lines) + (f"\n\n{note}\n" if note else "\n")


def write_and_print(results: Path = RESULTS, console: Console | None = None) -> list[Row]:
    gathered = gather(results)
    rows = [row for name, data in gathered.items() for row in rows_of(name, data)]
    (results / "latest.json").write_text(json.dumps(gathered, indent=2) + "\n")
    (results / "latest.md").write_text(markdown(rows, gathered))
    table = Table(*HEADERS, title="Strataflow benchmarks (ratio = value / baseline)")
    for column in table.columns[2:5] + table.columns[6:7]:
        column.justify = "right"
    for row in rows:
        table.add_row(*_cells(row))
    # Piped into a log (make bench | tee), rich would wrap every cell at 80 columns.
    out = console or Console(width=None if Console().is_terminal else 220)
    out.print(table)
    out.print(_loads(gathered))
    return rows


if __name__ == "__main__":
    write_and_print()
