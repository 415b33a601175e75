"""Sweeps on a real SLURM cluster (``hydra/launcher=slurm``): slurmctld + slurmd, as .ci/slurm-up starts them
on a single node (partition ``debug``). CI runs these (``CI=true`` turns a missing cluster into a failure);
elsewhere they skip where ``sinfo`` is missing. Tiny tasks and short limits keep them to a few minutes.

- a two-job sweep with the default launcher settings plus a partition completes;
- a job whose time limit comes mid-run is signalled, requeued and resumed, and ends with exactly the
  numbers of an uninterrupted SLURM run of the same config, its metrics.jsonl without a missing or
  duplicated step;
- scancel of a running job leaves a resumable run directory, and the same command continues it;
- a job that slurmctld is signalling (squeue: SIGNALING) is not taken for a finished one;
- sbatch refusing the jobs is one line naming the option to fix.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mlrsnet.engine.log import read_metrics
from mlrsnet.train import meta_train
from tests.conftest import compose, run_cli

pytestmark = [pytest.mark.slurm, pytest.mark.slow]  # a real cluster: seconds to minutes per test

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
    """metrics.jsonl logs the steps 0 .. N-1 once each, N the step count of the last epoch record."""
    metrics = read_metrics(run / "metrics.jsonl")
    steps = [r["step"] for r in metrics if r["type"] == "step"]
    total = [r["step"] for r in metrics if r["type"] == "epoch"][-1]
    assert steps == list(range(total)), "metrics.jsonl has a missing or duplicated step"


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


def wait_for(condition, timeout: float, what: str):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def job_id(sweep: Path) -> str | None:
    """The SLURM job id of a one-job sweep, once submitted."""
    folder = sweep / ".submitit"
    ids = [p.name for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    return ids[0] if ids else None


@pytest.fixture
def sweeps(tmp_path):
    """Start sweeps in the background (``sweeps(args, sweep_dir)``); on teardown end any still running and
    cancel their jobs, so that a failed test leaves nothing on the cluster."""
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(args: list[str], name: str) -> subprocess.Popen:
        p = subprocess.Popen([*args, f"hydra.sweep.dir={name}"], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV)
        started.append((p, tmp_path / name))
        return p

    yield start
    for p, sweep in started:
        if p.poll() is None:
            p.kill()
            p.communicate()
        job = job_id(sweep)
        if job is not None:
            subprocess.run(["scancel", job], capture_output=True)


def epochs_lasting(seconds: float, overrides: list[str], directory: Path) -> int:
    """How many epochs of ``overrides`` take about ``seconds`` on one thread of this machine, so that the
    time-limit test outlasts SLURM's warning on a fast machine and stays short on a slow one. Timed by the
    runs' own ``epoch_time`` of 3 epochs, the fastest: the whole call's time, start-up included, once made
    an 82-epoch job that ended in 24 s, before the limit came."""
    before = torch.get_num_threads()
    try:
        meta_train(compose(overrides=[*overrides, "epochs=3", "threads=1", "snapshots=0"]), directory)
    finally:
        torch.set_num_threads(before)
    per_epoch = min(r["epoch_time"] for r in read_metrics(directory / "metrics.jsonl") if r["type"] == "epoch")
    return max(20, math.ceil(seconds / per_epoch))


def elapsed_s(job: str) -> int:
    """Seconds job ``job`` has been running (squeue's [D-][H:]M:SS)."""
    text = subprocess.run(["squeue", "-h", "-j", job, "-o", "%M"], capture_output=True, text=True).stdout.strip()
    days, _, clock = text.rpartition("-")
    seconds = sum(int(part) * 60**i for i, part in enumerate(reversed(clock.split(":"))))
    return seconds + 86400 * int(days or 0)


def test_time_limit_mid_run_requeues_and_resumes_to_the_uninterrupted_numbers(tmp_path, sweeps):
    """Two identical one-job sweeps; once the second one trains, its time limit is cut so that it comes
    mid-run (rather than at submission, so that a slow start cannot meet the warning before Python has its
    signal handlers). With signal_delay_s=90, slurmctld (which checks limits every 30 s) sends USR2 at its
    next check, at least 30 s before the kill. The run saves, submitit requeues it, the limit is lifted
    again (as an admin would) and the resumed run must end with the other one's numbers exactly."""
    overrides = ["+task=digits_mlp", "batch_size=8", "seed=0", "progress=false"]
    epochs = epochs_lasting(60, overrides, tmp_path / "calibration")
    args = [*SWEEP, *overrides, f"epochs={epochs}", "hydra.launcher.timeout_min=30",
            "hydra.launcher.signal_delay_s=90"]
    uninterrupted = sweeps(args, "reference")
    limited = sweeps(args, "limited")

    def training() -> bool:
        found = list((tmp_path / "limited").glob("0_*/metrics.jsonl"))
        return bool(found) and any(r["type"] == "step" for r in read_metrics(found[0]))

    job = wait_for(lambda: job_id(tmp_path / "limited"), 120, "the job's submission")
    wait_for(training, 300, "the job's first step")
    minutes = math.ceil(elapsed_s(job) / 60) + 1  # ends 60-120 s from now
    subprocess.run(["scontrol", "update", f"JobId={job}", f"TimeLimit={minutes}"], check=True)
    wait_for(lambda: "Requeued job" in job_logs(tmp_path / "limited"), 300, "the warning and the requeue")
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=30"], check=True)
    for p in (uninterrupted, limited):
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
    ref = next((tmp_path / "reference").glob("0_*"))
    run = next((tmp_path / "limited").glob("0_*"))
    logs = job_logs(tmp_path / "limited")
    assert "Caught signal SIGUSR2" in logs
    assert "resuming" in logs and "Requeued job" not in job_logs(tmp_path / "reference")
    restarts = json.loads((run / "environment.json").read_text())["threads"]["env"]["SLURM_RESTART_COUNT"]
    assert int(restarts) >= 1
    assert_every_step_once(run)
    assert records(run) == records(ref)
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (run, ref))
    assert summary["final_test_accuracy"] == expected["final_test_accuracy"]
    assert summary["final_train_loss"] == expected["final_train_loss"]


def test_scancel_leaves_a_resumable_run_that_the_same_command_continues(tmp_path, sweeps):
    command = [*SWEEP, "+task=digits_mlp", "epochs=8", "batch_size=8", "progress=false"]
    sweep = sweeps(command, "sweep")

    def training() -> list[Path]:
        found = list((tmp_path / "sweep").glob("0_*/metrics.jsonl"))
        return found if found and any(r["type"] == "epoch" for r in read_metrics(found[0])) else []

    run = wait_for(training, 300, "the job's first epoch")[0].parent
    subprocess.run(["scancel", str(job_id(tmp_path / "sweep"))], check=True)
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode != 0
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: a sweep job did not finish (job "), err[-2000:]
    assert "state CANCELLED" in last and "its log ends: " in last, last
    assert (run / "run_state.pt").is_file() and not (run / "summary.json").exists()

    again = subprocess.run([*command, "hydra.sweep.dir=sweep"], cwd=tmp_path, capture_output=True, text=True,
                           env=ENV, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming {run}" in job_logs(tmp_path / "sweep")
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"
    assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl") if r["type"] == "epoch"] == list(range(1, 9))
    assert_every_step_once(run)


def test_a_job_being_signalled_is_not_taken_for_a_finished_one(tmp_path):
    """While slurmctld signals a job (the time-limit warning, or scancel --signal), squeue shows it SIGNALING
    for some milliseconds, a state that submitit counts as finished. A sweep that polled then stopped waiting
    for a job that ran on ("a sweep job did not finish": how the requeue test failed in CI once). Here a
    submitit job is signalled every 0.1 s while its state is polled as fast as squeue answers: the job may
    count as done only once its result is there, and the polls must have met SIGNALING."""
    import threading

    import submitit
    from submitit.slurm.slurm import SlurmJob

    from mlrsnet.engine.cluster import watch_slurm_jobs

    assert watch_slurm_jobs()
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="slurm")
    executor.update_parameters(slurm_partition="debug", timeout_min=5)
    job = executor.submit(time.sleep, 15)
    wait_for(lambda: job.watcher.get_state(job.job_id, mode="force") == "RUNNING", 120, "the job to start")
    running = True

    def signal_it() -> None:
        while running:
            subprocess.run(["scancel", "--signal=CONT", job.job_id], capture_output=True)
            time.sleep(0.1)

    signaller = threading.Thread(target=signal_it, daemon=True)
    signaller.start()
    signalled = 0
    try:
        deadline = time.monotonic() + 120
        while not job.done(force_check=True):
            signalled += b"SIGNALING" in (SlurmJob.watcher._output or b"")
            assert time.monotonic() < deadline, "the job did not end within 120 s"
        assert job.paths.result_pickle.exists(), f"done in state {job.state} without a result"
    finally:
        running = False
        signaller.join()
    assert signalled, "no poll met the SIGNALING state; the test showed nothing"
    assert job.result() is None


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
