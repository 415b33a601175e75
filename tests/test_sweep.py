"""Cluster sweeps: the shipped Hydra launcher configs, and a real two-job multirun through
hydra-submitit-launcher's ``submitit_local`` (the same code path as ``hydra/launcher=slurm``)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import compose, run_cli


def test_slurm_launcher_config_exposes_the_cluster_knobs():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="mlrsnet.conf", version_base="1.3"):
        cfg = hydra_compose("train", overrides=[
            "+task=digits_cnn", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
            "hydra.launcher.timeout_min=720", "hydra.launcher.gpus_per_node=2", "hydra.launcher.cpus_per_task=16",
            "hydra.launcher.mem_gb=64", "hydra.launcher.array_parallelism=4",
        ], return_hydra_config=True)
        launcher = cfg.hydra.launcher
        assert launcher._target_.endswith("SlurmLauncher")
        assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node, launcher.cpus_per_task,
                launcher.mem_gb, launcher.array_parallelism) == ("gpu", 720, 2, 16, 64, 4)
        assert launcher.max_num_timeout > 0  # time-outs requeue; the run resumes from run_state.pt
        local = hydra_compose("train", overrides=["+task=digits_cnn", "hydra/launcher=local"],
                              return_hydra_config=True).hydra.launcher
        assert local._target_.endswith("LocalLauncher")
    GlobalHydra.instance().clear()
    compose(overrides=["+task=digits_cnn"])  # the group options do not disturb plain composition


def test_two_job_multirun_through_submitit_local_then_report(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    r = run_cli(["mlrsnet.train", "-m", "+task=digits_mlp", "seed=0,1", "hydra/launcher=local", "epochs=1",
                 "task.train_fraction=0.2", "progress=false", "hydra.sweep.dir=sweep"], cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summaries = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert len(summaries) == 2
    loaded = [json.loads(p.read_text()) for p in summaries]
    assert sorted(s["seed"] for s in loaded) == [0, 1]
    assert all(s["status"] == "complete" and 0 <= s["final_test_accuracy"] <= 1 for s in loaded)
    assert len(list((tmp_path / "sweep" / ".submitit").iterdir())) >= 1  # the jobs went through submitit

    table = run_cli(["mlrsnet.report", "sweep"], cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith("| digits_mlp"))
    mean = sum(s["final_test_accuracy"] for s in loaded) / 2
    assert "| 2 | " in row and f"{mean:.4g} ± " in row
