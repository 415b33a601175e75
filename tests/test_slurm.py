"""Sweeps on a real SLURM cluster (``hydra/launcher=slurm``): slurmctld + slurmd, as .ci/slurm-up starts them
on a single node (partition ``debug``). CI runs these (``CI=true`` turns a missing cluster into a failure);
elsewhere they skip where ``sinfo`` is missing. Tiny tasks and short limits keep them to a few minutes.

- a two-job sweep with the default launcher settings plus a partition completes;
- a job whose time limit comes mid-run is signalled, requeued and resumed, and ends with exactly the
  numbers of an uninterrupted SLURM run of the same config, its metrics.jsonl without a missing or
  duplicated step;
- scancel of a running job leaves a resumable run directory, and the same command continues it;
- sbatch refusing the jobs is one line naming the option to fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlrsnet.log import read_metrics
from tests.conftest import run_cli

pytestmark = pytest.mark.slurm

SWEEP = [sys.executable, "-m", "mlrsnet.train", "-m", "hydra/launcher=slurm", "hydra.launcher.partition=debug"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    """A SLURM cluster with an idle or busy node, else a skip (a failure in CI)."""
    if shutil.which("sinfo") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the SLURM tests but sinfo is not on the PATH; .ci/run starts a cluster with "
                        ".ci/slurm-up")
        pytest.skip("needs a SLURM cluster (sinfo not found); start one on this machine with sudo .ci/slurm-up")
    states = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%T"], capture_output=True, text=True).stdout.split()
    assert set(states) & {"idle", "mixed", "allocated"}, (
        f"the SLURM partition debug has no usable node ({states}); start the cluster with sudo .ci/slurm-up")


def records(run: Path) -> list[dict]:
    """metrics.jsonl without its timings."""
    return [{k: v for k, v in r.items() if k != "epoch_time"} for r in read_metrics(run / "metrics.jsonl")]


def assert_every_step_once(run: Path) -> None:
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["type"] == "step"]
    assert steps == list(range(1, len(steps) + 1)), "metrics.jsonl has a missing or duplicated step"


def job_logs(sweep: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted((sweep / ".submitit").rglob("*_log.*")))


def test_two_job_sweep_with_the_default_launcher_settings(tmp_path):
    r = run_cli(["mlrsnet.train", "-m", "+task=digits_mlp", "seed=0,1", "epochs=1", "task.train_fraction=0.2",
                 "progress=false", "hydra/launcher=slurm", "hydra.launcher.partition=debug",
                 "hydra.sweep.dir=sweep"], cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/summary.json"))]
    assert sorted(s["seed"] for s in summaries) == [0, 1]
    assert all(s["status"] == "complete" for s in summaries)
    # No accounting on this cluster: said once, and no flood of submitit's sacct warnings.
    out = r.stdout + r.stderr
    assert "Bypassing sacct" not in out
    assert out.count("keeps no job accounting") == 1
    # Each job ran as a SLURM job, on the one CPU the cluster gives by default, with one torch thread.
    env = json.loads(next((tmp_path / "sweep").glob("0_*/environment.json")).read_text())["threads"]
    assert env["env"]["SLURM_JOB_ID"] and env["cpu_affinity"] and len(env["cpu_affinity"]) == 1
    assert env["torch_threads"] == 1


def test_time_limit_mid_run_requeues_and_resumes_to_the_uninterrupted_numbers(tmp_path):
    # ~50 s of training on one CPU: more than a job gets before SLURM's warning, which comes 10-40 s into a
    # one-minute job with signal_delay_s=20 (slurmctld checks its time limits every 30 s).
    overrides = ["+task=digits_mlp", "epochs=30", "batch_size=8", "seed=0", "progress=false"]

    def sweep(name: str, timeout_min: int) -> subprocess.Popen:
        return subprocess.Popen(
            [*SWEEP, *overrides, f"hydra.launcher.timeout_min={timeout_min}", "hydra.launcher.signal_delay_s=20",
             "hydra.launcher.max_num_timeout=30", f"hydra.sweep.dir={name}"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)

    uninterrupted, limited = sweep("reference", 30), sweep("limited", 1)
    for p in (uninterrupted, limited):
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
    ref = next((tmp_path / "reference").glob("0_*"))
    run = next((tmp_path / "limited").glob("0_*"))
    logs = job_logs(tmp_path / "limited")
    assert "Caught signal SIGUSR2" in logs and "this job is timed-out" in logs
    assert "Requeued job" in logs and "resuming" in logs
    assert "Requeued job" not in job_logs(tmp_path / "reference")
    restarts = json.loads((run / "environment.json").read_text())["threads"]["env"]["SLURM_RESTART_COUNT"]
    assert int(restarts) >= 1
    assert_every_step_once(run)
    assert records(run) == records(ref)
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (run, ref))
    assert summary["final_test_accuracy"] == expected["final_test_accuracy"]
    assert summary["final_train_loss"] == expected["final_train_loss"]


def test_scancel_leaves_a_resumable_run_that_the_same_command_continues(tmp_path):
    command = [*SWEEP, "+task=digits_mlp", "epochs=8", "batch_size=8", "progress=false", "hydra.sweep.dir=sweep"]
    sweep = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=ENV)
    deadline = time.monotonic() + 300
    metrics: list[Path] = []
    while sweep.poll() is None and time.monotonic() < deadline:
        metrics = list((tmp_path / "sweep").glob("0_*/metrics.jsonl"))
        if metrics and any(r["type"] == "epoch" for r in read_metrics(metrics[0])):
            break
        time.sleep(0.2)
    assert metrics, "the job never started training"
    job = next(p.name for p in (tmp_path / "sweep" / ".submitit").iterdir() if p.name.split("_")[0].isdigit())
    subprocess.run(["scancel", job.split("_")[0]], check=True)
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode != 0
    assert err.strip().splitlines()[-1].startswith("error: a sweep job did not finish"), err[-2000:]
    run = metrics[0].parent
    assert (run / "run_state.pt").is_file() and not (run / "summary.json").exists()

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming {run}" in job_logs(tmp_path / "sweep")
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"
    assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl") if r["type"] == "epoch"] == list(range(1, 9))
    assert_every_step_once(run)


@pytest.mark.parametrize(("options", "expected"), [
    (["hydra.launcher.partition=nope"], "change hydra.launcher.partition"),
    (["hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=1"], "change hydra.launcher.gpus_per_node"),
])
def test_sbatch_refusal_is_one_line_naming_the_option(tmp_path, options, expected):
    r = run_cli(["mlrsnet.train", "-m", "+task=digits_mlp", "epochs=1", "hydra/launcher=slurm", *options,
                 "hydra.sweep.dir=sweep"], cwd=tmp_path, timeout=300)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: sbatch refused the sweep's jobs (sbatch: error: ") and expected in last, last
    assert "nothing was submitted" in last and "resume" not in last
    assert not list((tmp_path / "sweep").glob("0_*"))
