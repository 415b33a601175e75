"""Run directories: unique for runs started at the same moment, locked while a run writes, and result
files readable as the umask says."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mlrsnet.engine.cli import compose
from mlrsnet.engine.log import read_metrics
from mlrsnet.errors import ConfigError
from mlrsnet.io import atomic_write_text
from mlrsnet.rundir import RunDirLock
from mlrsnet.train import meta_train
from tests.conftest import run_cli


def _run_dir(config_name: str, overrides: list[str]) -> str:
    cfg = compose(config_name, overrides, return_hydra_config=True)
    return str(cfg.hydra.run.dir)


@pytest.mark.parametrize(("config_name", "group"), [("train", "+task=digits_mlp"), ("transfer", "+query=digits_mlp"),
                                                    ("bench", "+task=digits_mlp")])
def test_runs_started_in_the_same_second_get_different_directories(config_name, group):
    """The issue's reproduction: two seeds launched by hand in the same second shared one directory (named
    to the second), and one run's results were lost."""
    from hydra.core.utils import setup_globals

    setup_globals()  # Hydra's ${now:} resolver, as hydra.main registers it
    for _ in range(5):  # retry if a second boundary falls between the two (then any scheme differs)
        t0 = int(time.time())
        first = _run_dir(config_name, [group, "seed=0"])
        second = _run_dir(config_name, [group, "seed=1"])
        if int(time.time()) == t0:
            break
    assert first != second
    assert Path(first).parent == Path(second).parent  # runs/<command>/<name>/, only the leaf differs


@pytest.mark.slow
def test_two_processes_started_together_write_two_complete_runs(tmp_path: Path):
    """Both runs of the issue's reproduction, started at once, keep their own results."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = ["+task=digits_mlp", "epochs=1", "progress=false", "log_steps=false", "snapshots=0"]
    procs = [subprocess.Popen([sys.executable, "-m", "mlrsnet.train", *args, f"seed={seed}"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for seed in (0, 1)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    summaries = sorted(tmp_path.rglob("summary.json"))
    assert len(summaries) == 2
    assert sorted(json.loads(s.read_text())["seed"] for s in summaries) == [0, 1]
    for s in summaries:
        epochs = [r for r in read_metrics(s.parent / "metrics.jsonl") if r["type"] == "epoch"]
        assert [r["epoch"] for r in epochs] == [1]
        assert not (s.parent / "cli.log").exists()  # Hydra's always-empty job log is off


@pytest.mark.slow
def test_a_second_run_into_a_locked_directory_refuses_in_one_line(tmp_path: Path, compose_cfg):
    cfg = compose_cfg("train", ["+task=digits_mlp", "epochs=1", "progress=false"])
    run_dir = tmp_path / "run"
    with RunDirLock(run_dir):
        with pytest.raises(ConfigError) as info:
            meta_train(cfg, run_dir)
        assert "in use by another run" in str(info.value) and f"pid {os.getpid()}" in str(info.value)
        assert "hydra.run.dir=PATH" in str(info.value)
        assert not (run_dir / "metrics.jsonl").exists()
        proc = run_cli(["mlrsnet.train", "+task=digits_mlp", "epochs=1", "progress=false",
                        f"hydra.run.dir={run_dir}"], cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-3000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "is in use by another run" in lines[0]
        assert not (run_dir / "metrics.jsonl").exists()
    with RunDirLock(run_dir):  # released on exit: the directory can be taken again
        pass


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_respect_the_umask(tmp_path: Path, umask: int):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "summary.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~umask
