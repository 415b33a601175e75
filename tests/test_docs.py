"""The documentation: the site builds with ``mkdocs build --strict``, its generated reference lists every key of the
typed configs and every schedule, every relative link of README.md and docs/ points to a file that exists,
README.md stays short, and every ```python block of README.md and docs/ runs.

A block that needs data, a GPU or a long run is marked on the line before its fence with ``<!-- no-exec: why -->``
and is not executed; every other one runs in a fresh interpreter in a temporary directory."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
MARKDOWN = [REPO / "README.md", *PAGES]
NO_EXEC = "<!-- no-exec"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _hooks():
    spec = importlib.util.spec_from_file_location("mlrsnet_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_blocks() -> list[tuple[str, str]]:
    """``(id, code)`` of every ```python block not marked no-exec, in README.md and docs/."""
    found = []
    for path in MARKDOWN:
        text = path.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            if before.strip().startswith(NO_EXEC):
                continue
            line = text.count("\n", 0, m.start()) + 1
            found.append((f"{path.relative_to(REPO)}:{line}", m.group(1)))
    return found


BLOCKS = python_blocks()


def test_the_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail to docs/"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_a_file_that_exists(path):
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # links inside any code block are not links
    missing = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            continue
        if not (path.parent / target.split("#", 1)[0]).exists():
            missing.append(target)
    assert not missing, f"{path.relative_to(REPO)} links to missing files: {missing}"


def test_the_no_exec_marker_is_used_sparingly():
    """Most examples run: a marker is for data, a GPU or a long run, and says which."""
    marked = [p for p in MARKDOWN for line in p.read_text(encoding="utf-8").splitlines()
              if line.strip().startswith(NO_EXEC)]
    assert len(marked) <= 3, marked
    assert len(BLOCKS) >= 8


def test_the_generated_reference_lists_every_key_and_schedule():
    """Straight from the hooks, without a build: every dotted key of every command's typed config, of the suite
    and of each task family, and every declared schedule with each of its parameters."""
    from mlrsnet.engine.config import CONFIGS
    from mlrsnet.schedules.registry import schedules
    from mlrsnet.suite import SuiteConfig, Workload
    from mlrsnet.tasks.registry import _DATASETS
    from mlrsnet.typed import keys

    hooks = _hooks()
    config, tasks, scheds = hooks.configuration(), hooks.tasks(), hooks.schedules()
    for cls in [*CONFIGS.values(), SuiteConfig, Workload]:
        for key, _, _ in keys(cls):
            if key != "task":
                assert f"`{key}`" in config, f"{cls.__name__}.{key} is missing from the configuration reference"
    from mlrsnet.engine.family import FamilyConfig, FamilyMember

    for cls, prefix in ((FamilyConfig, "family."), (FamilyMember, "")):
        for key, _, _ in keys(cls):
            assert f"`{prefix}{key}`" in config, f"{cls.__name__}.{key} is missing from the configuration reference"
    for cls, _ in _DATASETS.values():
        for key, _, _ in keys(cls):
            assert f"`task.{key}`" in tasks, f"{cls.__name__}.{key} is missing from the task keys"
    for name, decl in schedules().items():
        assert f"## `{name}`" in scheds
        for f in dataclasses.fields(decl.params):
            assert f"`schedule.{f.name}`" in scheds, f"{name}.{f.name} is missing from the schedules page"


@pytest.mark.slow
def test_the_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(site)],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    from mlrsnet.engine.config import TrainConfig

    page = (site / "reference" / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "generated:" not in page
    for f in dataclasses.fields(TrainConfig):
        assert f"<code>{f.name}</code>" in page or f"<code>{f.name}." in page, f"TrainConfig.{f.name} not in the page"
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert 'id="mlrsnet.MLRSNetScheduler"' in api and "total_steps" in api


@pytest.mark.slow
@pytest.mark.parametrize("code", [c for _, c in BLOCKS], ids=[i for i, _ in BLOCKS])
def test_the_python_examples_run(code, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "WANDB_MODE": "offline", "WANDB_SILENT": "true", "MLRSNET_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-5000:]
