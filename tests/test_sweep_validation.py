"""A multirun sweep is validated whole before its first job starts, and a task key can be swept over tasks."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_a_bad_value_in_any_job_stops_the_sweep_before_the_first_job(tmp_path):
    proc = run_cli(["mlrsnet.train", "-m", "+task=digits_mlp", "epochs=1,0", "progress=false",
                    "hydra.sweep.dir=sweep"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sweep job #1 (") and "epochs must be >= 1" in lines[0]
    assert not (tmp_path / "sweep").exists()  # job 0 never ran


@pytest.mark.slow
def test_a_task_key_the_family_lacks_is_refused_for_its_job_before_any_job(tmp_path):
    proc = run_cli(["mlrsnet.train", "-m", "+task=digits_mlp,nmf_synthetic", "epochs=1", "task.train_fraction=0.5",
                    "progress=false", "hydra.sweep.dir=sweep"], cwd=tmp_path)
    assert proc.returncode == 2
    assert "sweep job #1" in proc.stderr and "unknown config key task.train_fraction" in proc.stderr
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_a_task_key_sweeps_over_tasks_of_one_family(tmp_path):
    proc = run_cli(["mlrsnet.train", "-m", "+task=digits_mlp,digits_cnn", "epochs=1", "task.train_fraction=0.2",
                    "schedule=fixed", "progress=false", "log_steps=false", "hydra.sweep.dir=sweep"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    configs = sorted((tmp_path / "sweep").glob("*/config.yaml"))
    assert len(configs) == 2 and all("train_fraction: 0.2" in c.read_text() for c in configs)
