"""Cluster sweeps: the shipped Hydra launcher configs, and a real two-job multirun through
hydra-submitit-launcher's ``submitit_local`` (the same code path as ``hydra/launcher=slurm``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlrsnet.engine.log import read_metrics
from mlrsnet.train import meta_train
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


@pytest.mark.slow
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


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the job's process")
@pytest.mark.slow
def test_preempted_job_is_requeued_by_submitit_and_resumes_exactly(tmp_path):
    """SIGUSR2 is what SLURM sends a submitit job before a time-out or on pre-emption: the run saves after
    its step, submitit requeues it, and the requeued job resumes in the same run directory."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    overrides = ["+task=digits_mlp", "task.train_fraction=0.3", "batch_size=8", "epochs=3", "progress=false"]
    reference = meta_train(compose(overrides=overrides), tmp_path / "ref")
    sweep = subprocess.Popen(
        [sys.executable, "-m", "mlrsnet.train", "-m", *overrides, "seed=0", "hydra/launcher=local",
         "hydra.sweep.dir=sweep"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 300
    metrics = []
    while sweep.poll() is None and time.monotonic() < deadline:
        metrics = list((tmp_path / "sweep").glob("0_*/metrics.jsonl"))
        if metrics and any(r["type"] == "epoch" for r in read_metrics(metrics[0])):
            break
        time.sleep(0.02)
    controller = next(int(p.name) for p in (tmp_path / "sweep" / ".submitit").iterdir() if p.name.isdigit())
    for pid in children(controller):
        os.kill(pid, signal.SIGUSR2)
    _, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, err[-3000:]
    logs = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").rglob("*_log.*"))
    assert "Requeued job" in logs and "resuming" in logs
    run = metrics[0].parent

    def records(directory: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "epoch_time"} for r in read_metrics(directory / "metrics.jsonl")]

    assert records(run) == records(tmp_path / "ref")
    assert json.loads((run / "summary.json").read_text())["final_test_accuracy"] == reference["final_test_accuracy"]


@pytest.mark.slow
def test_sigterm_ends_a_sequential_multirun_instead_of_starting_the_next_job(tmp_path):
    overrides = ["+task=digits_mlp", "task.train_fraction=0.3", "batch_size=8", "epochs=3", "progress=false"]
    sweep = subprocess.Popen([sys.executable, "-m", "mlrsnet.train", "-m", *overrides, "seed=0,1",
                              "hydra.sweep.dir=sweep"], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 300
    while sweep.poll() is None and time.monotonic() < deadline:
        metrics = list((tmp_path / "sweep").glob("0_*/metrics.jsonl"))
        if metrics and any(r["type"] == "epoch" for r in read_metrics(metrics[0])):
            break
        time.sleep(0.02)
    sweep.send_signal(signal.SIGTERM)
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 75, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("error: stopped by SIGTERM")
    assert not list((tmp_path / "sweep").glob("1_*/metrics.jsonl"))  # the second job never started
    assert list((tmp_path / "sweep").glob("0_*/run_state.pt"))
