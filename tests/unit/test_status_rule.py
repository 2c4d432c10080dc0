"""The status rule, checked on the syntax tree of src/: only transitions.py writes a status.

Nor the lease and timing details that go with a move (`GOVERNED_ATTRIBUTES`). A write is
any of: `x.status = ...` (plain, augmented or annotated), `setattr(x, "status", ...)`,
`Table(status=...)` for a table with a status machine, and `update(...).values(status=...)`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from strataflow.transitions import GOVERNED_ATTRIBUTES, MACHINES

SRC = Path(__file__).resolve().parents[2] / "src" / "strataflow"
OWNER = SRC / "transitions.py"
GOVERNED_TABLES = frozenset(model.__name__ for model in MACHINES)


def _assigned(target: ast.expr) -> list[ast.expr]:
    """What an assignment target writes: itself, or each element of a tuple / list target."""
    if isinstance(target, (ast.Tuple, ast.List)):
        return [t for element in target.elts for t in _assigned(element)]
    if isinstance(target, ast.Starred):
        return _assigned(target.value)
    return [target]


def _attribute_targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return [t for target in node.targets for t in _assigned(target)]
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    return []


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


class _Writes(ast.NodeVisitor):
    """Collects governed writes; `self.status = ...` inside a class that is no table is its own business
    (an exception's HTTP status, say), not an entity's status."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.classes: list[str] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node.name)
        self.generic_visit(node)
        self.classes.pop()

    def _own_attribute(self, target: ast.Attribute) -> bool:
        return (
            isinstance(target.value, ast.Name)
            and target.value.id == "self"
            and bool(self.classes)
            and self.classes[-1] not in GOVERNED_TABLES
        )

    def generic_visit(self, node: ast.AST) -> None:
        for target in _attribute_targets(node):
            if (
                isinstance(target, ast.Attribute)
                and target.attr in GOVERNED_ATTRIBUTES
                and not self._own_attribute(target)
            ):
                self.found.append(f"{target.lineno}: .{target.attr} assigned")
        if isinstance(node, ast.Call):
            self._call(node)
        super().generic_visit(node)

    def _call(self, node: ast.Call) -> None:
        name = _call_name(node)
        if (
            name == "setattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in GOVERNED_ATTRIBUTES
        ):
            self.found.append(f"{node.lineno}: setattr(..., {node.args[1].value!r})")
        if name in GOVERNED_TABLES or name == "values":
            for keyword in node.keywords:
                if keyword.arg in GOVERNED_ATTRIBUTES:
                    self.found.append(f"{node.lineno}: {name}({keyword.arg}=...)")


def governed_writes(source: str, filename: str = "<src>") -> list[str]:
    """Every write of a governed attribute in `source`, as `line: what`."""
    writes = _Writes()
    writes.visit(ast.parse(source, filename))
    return writes.found


def test_only_transitions_writes_a_status() -> None:
    offenders = {
        str(path.relative_to(SRC)): writes
        for path in sorted(SRC.rglob("*.py"))
        if path != OWNER and (writes := governed_writes(path.read_text(), str(path)))
    }
    assert offenders == {}


def test_the_walk_sees_every_kind_of_write() -> None:
    source = """\
row.status = 'FAILED'
tier.lease_owner, tier.attempts = None, 2
tier.attempts += 1
batch.completed_at: object = now
setattr(row, 'status', 'FAILED')
Task(task_id='t', status='PENDING')
update(Task).values(lease_expires_at=now)
JobOutcome(status='COMPLETED')  # not a table: a result that names a status
if row.status == 'FAILED': pass  # reading is fine
counts[row.status] = 1  # a key, not a write
class ApiError(Exception):  # an exception's HTTP status is its own business
    def __init__(self, status):
        self.status = status
class Task:  # a table's own method is not
    def reset(self):
        self.status = 'PENDING'
"""
    assert [line.split(":")[0] for line in governed_writes(source)] == ["1", "2", "2", "3", "4", "5", "6", "7", "16"]
