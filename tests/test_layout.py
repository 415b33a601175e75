"""The shape of the house (issue 10): entry points are leaves of the import graph, the LR-driver protocol
sits with the schedules, and the scheduler users import does not pull in the training loop."""

from __future__ import annotations

import ast
from pathlib import Path

import mlrsnet

PACKAGE = Path(mlrsnet.__file__).parent
ENTRY_POINTS = {"mlrsnet.train", "mlrsnet.transfer", "mlrsnet.bench", "mlrsnet.report", "mlrsnet.plot",
                "mlrsnet.rl.__main__"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every module of the package -> the mlrsnet modules it imports (at any depth of its code)."""
    out: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlrsnet"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("mlrsnet"))
        out[_module(path)] = found
    return out


def test_no_module_imports_an_entry_point():
    offenders = {mod: sorted(deps & ENTRY_POINTS) for mod, deps in imports().items() if deps & ENTRY_POINTS}
    assert not offenders, f"entry points imported by: {offenders}"


def test_the_scheduler_does_not_import_the_loop():
    graph = imports()
    assert "mlrsnet.loop" not in graph["mlrsnet.scheduler"]
    assert "mlrsnet.loop" not in graph["mlrsnet.schedules.drivers"]


def test_one_definition_per_builder_name():
    """One ``build_optimizer`` (the registry's replacement optimisers); the base optimiser has its own name."""
    defined: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                defined.setdefault(node.name, []).append(_module(path))
    repeated = {name: mods for name, mods in defined.items() if len(mods) > 1 and name not in ("main",)}
    assert not repeated, f"public names defined in more than one module: {repeated}"
