"""How `pytest -n N --dist loadfile` hands out the suite: the longest work first.

xdist's loadfile mode sends whole files to the workers, by default the files
with the most tests first. Our slowest files hold few tests (a crash test, a
two-host cluster, a Ray pipeline), so they went out last and one worker ran a
long tail alone while the other idled. Here the work goes out longest first
(the longest-processing-time rule), by the seconds each file took in a measured
run (`file_costs.json`; a file not listed counts as quick, so a stale table only
costs balance, never correctness). The files that use the session's Ray go out as
one unit: one worker starts Ray once, and two Rays never share the machine.

Refresh the table from a full run's JUnit report:
    pytest -n 2 --dist loadfile --junitxml=/tmp/junit.xml
    python -m tests.scheduling /tmp/junit.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

COSTS_PATH = Path(__file__).with_name("file_costs.json")
RAY_UNIT = "tests/scale/ (the session's Ray)"
SESSION_RAY_FILES = frozenset(
    {
        "tests/scale/test_ray_data.py",
        "tests/scale/test_ray_poison_rows.py",
        "tests/scale/test_ray_runner.py",
        "tests/scale/test_ray_scale.py",
    }
)


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def unit_of(path: str) -> str:
    """The unit of work a test file belongs to: itself, or the session-Ray group."""
    return RAY_UNIT if path in SESSION_RAY_FILES else path


def unit_costs() -> dict[str, float]:
    costs: dict[str, float] = json.loads(COSTS_PATH.read_text()) if COSTS_PATH.exists() else {}
    units: dict[str, float] = defaultdict(float)
    for path, seconds in costs.items():
        units[unit_of(path)] += seconds
    return units


def order_items(items: list[pytest.Item]) -> None:
    """Longest unit first; a unit's tests stay together and in their collected order."""
    costs = unit_costs()

    def key(item: pytest.Item) -> tuple[float, str]:
        unit = unit_of(file_of(item.nodeid))
        return (-costs.get(unit, 0.0), unit)

    items.sort(key=key)


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's loadfile scheduler with the session-Ray files as one unit, in collected order."""
    from xdist.scheduler import LoadFileScheduling

    class LongestFirstScheduling(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(file_of(nodeid))

    config.option.loadscopereorder = False  # keep the order `order_items` gave the collection
    return LongestFirstScheduling(config, log)


def costs_from_junit(report: Path) -> dict[str, float]:
    """Seconds per test file from a JUnit report (setup, call and teardown of each test)."""
    seconds: dict[str, float] = defaultdict(float)
    for case in ET.parse(report).getroot().iter("testcase"):
        classname = case.get("classname", "")
        path = classname.replace(".", "/") + ".py"  # a test function: the classname is its module
        if not Path(path).exists():  # a method: the classname ends with its class
            path = classname.rpartition(".")[0].replace(".", "/") + ".py"
        seconds[path] += float(case.get("time", "0"))
    return {path: round(s, 1) for path, s in sorted(seconds.items(), key=lambda kv: -kv[1]) if s >= 5}


if __name__ == "__main__":
    COSTS_PATH.write_text(json.dumps(costs_from_junit(Path(sys.argv[1])), indent=1) + "\n")
    print(f"wrote {COSTS_PATH}")
