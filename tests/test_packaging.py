"""Packaging: the README's commands, .ci/run, the package list and a wheel that carries conf/."""

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(python -m venv[^\n]+)\n```", text)


def test_readme_has_the_two_fresh_machine_commands():
    cmds = readme_commands()
    assert any(c.endswith("python -m mlrsnet.train +task=digits_cnn") for c in cmds)
    assert any(c.endswith("python -m pytest -q") for c in cmds)
    for c in cmds:
        assert c.index("pip install torch==2.13.0") < c.index("pip install -e")


def test_ci_runs_exactly_the_readme_test_command():
    test_cmd = next(c for c in readme_commands() if c.endswith("pytest -q"))
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci


def test_package_list_covers_every_subpackage():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"mlrsnet." + ".".join(p.parent.relative_to(REPO / "mlrsnet").parts) if p.parent != REPO / "mlrsnet"
             else "mlrsnet" for p in (REPO / "mlrsnet").rglob("__init__.py")}
    found = {f.rstrip(".") for f in found} | {"mlrsnet.conf"}
    assert listed == found


def test_dependencies_exclude_torchvision_and_torchtext():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ]", d)[0] for d in deps}
    assert {"torch", "higher", "hydra-core", "omegaconf"} <= names
    assert not names & {"torchvision", "torchtext"}


def test_wandb_is_an_extra_only():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", d)[0] for d in project["dependencies"]}
    assert "wandb" not in names
    extras = project["optional-dependencies"]
    assert any(d.startswith("wandb") for d in extras["wandb"]) and any(d.startswith("wandb") for d in extras["dev"])


@pytest.mark.slow
def test_built_wheel_finds_its_configs(tmp_path, built_wheel):
    wheel = built_wheel
    names = zipfile.ZipFile(wheel).namelist()
    assert "mlrsnet/conf/train.yaml" in names and "mlrsnet/conf/task/digits_cnn.yaml" in names
    shipped = {"mlrsnet/schedules/policies/nmf_synthetic.pt", "mlrsnet/schedules/policies/digits_cnn.pt"}
    assert {"mlrsnet/conf/rl.yaml", *shipped} <= set(names)  # the RL command's config and the shipped policies
    assert "mlrsnet/tasks/gpt_cpython_base.pt" in names  # the LLM tasks' pretrained base
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # Run from an unrelated directory with only the unpacked wheel on the path (no source checkout).
    code = ("import mlrsnet, sys; from mlrsnet.engine.cli import available_configs; "
            "print(mlrsnet.__file__); print(','.join(available_configs('task')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    path, tasks = out.stdout.strip().splitlines()
    assert Path(path).is_relative_to(site)
    assert "digits_cnn" in tasks.split(",")
    job = subprocess.run([sys.executable, "-m", "mlrsnet.train", "+task=digits_cnn", "--cfg", "job"], cwd=tmp_path,
                         capture_output=True, text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                         timeout=120)
    assert job.returncode == 0, job.stderr
    assert "dataset: digits" in job.stdout
