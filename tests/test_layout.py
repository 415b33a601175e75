"""The shape of the house: the layers contract of pyproject.toml holds (``lint-imports``), the import graph
has no cycle (function-local imports included), entry points are leaves, and the scheduler users import does
not pull in the training loop."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mlrsnet

PACKAGE = Path(mlrsnet.__file__).parent
ENTRY_POINTS = {"mlrsnet.train", "mlrsnet.transfer", "mlrsnet.bench", "mlrsnet.report", "mlrsnet.plot",
                "mlrsnet.rl.__main__", "mlrsnet.ensemble.__main__"}


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
    assert "mlrsnet.engine.loop" not in graph["mlrsnet.schedules.scheduler"]
    assert "mlrsnet.engine.loop" not in graph["mlrsnet.schedules.drivers"]


def test_one_definition_per_builder_name():
    """One ``build_optimizer`` (the registry's replacement optimisers); the base optimiser has its own name."""
    defined: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                defined.setdefault(node.name, []).append(_module(path))
    repeated = {name: mods for name, mods in defined.items() if len(mods) > 1 and name not in ("main",)}
    assert not repeated, f"public names defined in more than one module: {repeated}"


def test_the_layers_contract_holds():
    """``lint-imports`` with pyproject.toml's contract: apps > engine > domain > foundation, every module
    of the package in a layer (``exhaustive``)."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "lint-imports is missing: pip install -e '.[dev]'"
    proc = subprocess.run([exe, "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_a_module_importing_a_higher_layer_breaks_the_contract(tmp_path):
    """The contract can fail: a copy of the package whose net module imports the engine is refused."""
    copy = tmp_path / "mlrsnet"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("*.pt", "__pycache__"))
    net = copy / "net.py"
    net.write_text(net.read_text() + "\n\ndef _late():\n    from mlrsnet.engine import loop  # noqa: F401\n")
    shutil.copy(PACKAGE.parent / "pyproject.toml", tmp_path / "pyproject.toml")
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    proc = subprocess.run([exe, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)})
    assert proc.returncode == 1 and "mlrsnet.net -> mlrsnet.engine" in proc.stdout, proc.stdout[-3000:]


def test_no_import_cycles():
    """Strongly connected components of the module graph, function-local imports included (grimp reads
    every import statement of a module)."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("mlrsnet", include_external_packages=False)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        for dep in graph.find_modules_directly_imported_by(module):
            if dep not in index:
                visit(dep)
                low[module] = min(low[module], low[dep])
            elif dep in stack:
                low[module] = min(low[module], index[dep])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"
