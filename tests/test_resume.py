"""Pre-emption and resume: a run killed with SIGTERM and resumed ends with the numbers of an
uninterrupted run (CPU, same seed)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from mlrsnet.engine.log import read_metrics
from mlrsnet.engine.resume import load_run_state
from mlrsnet.errors import ConfigError, RunInterrupted
from mlrsnet.train import meta_train
from tests.conftest import compose, run_cli, signal_at


def records(run_dir) -> list[dict]:
    """metrics.jsonl without the wall-clock field."""
    return [{k: v for k, v in r.items() if k != "epoch_time"} for r in read_metrics(run_dir / "metrics.jsonl")]



CASES = {
    "mlrsnet_meta_interval": ["+task=digits_cnn", "task.train_fraction=0.3", "batch_size=32", "meta.interval=3"],
    # dropout 0.5 as in the paper's LM tasks: its masks come from the global torch RNG, so this case
    # guards resume restoring the global RNG states (not only the task's generators)
    "language_model": ["+task=text_lstm_cpython", "task.max_chars=2000", "batch_size=4", "task.bptt=16",
                       "task.model_kwargs.hidden_size=32", "task.model_kwargs.emb_size=16",
                       "task.model_kwargs.dropout=0.5"],
    "fixed_lr": ["+task=digits_mlp", "task.train_fraction=0.3", "batch_size=32", "schedule=fixed"],
}
# Sequential meta windows (the reference's): where the meta stream stands and its carried state resume too.
CASES["language_model_sequential_meta"] = [*CASES["language_model"], "task.meta_windows=sequential"]


@pytest.mark.parametrize("case,stop_at", [("mlrsnet_meta_interval", 17), ("language_model", 40), ("fixed_lr", 13),
                                           ("language_model_sequential_meta", 40)])
@pytest.mark.slow
def test_interrupt_mid_epoch_then_resume_is_exact(tmp_path, monkeypatch, case, stop_at):
    overrides = [*CASES[case], "epochs=2", "progress=false"]
    reference = meta_train(compose(overrides=overrides), tmp_path / "ref")

    signal_at(monkeypatch, stop_at)
    with pytest.raises(RunInterrupted, match="stopped by SIGTERM") as info:
        meta_train(compose(overrides=overrides), tmp_path / "run")
    assert info.value.exit_code == 75
    state = load_run_state(tmp_path / "run" / "run_state.pt")
    assert state["progress"] is not None and state["progress"]["step"] > 0  # stopped inside an epoch
    # A kill after the last save may leave a torn or extra line; resuming cuts it off.
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:
        f.write('{"type": "epoch", "epoch": 99}\n{"type": "st')
    monkeypatch.undo()

    resumed = meta_train(compose(overrides=overrides), tmp_path / "run")
    assert records(tmp_path / "run") == records(tmp_path / "ref")
    metric = reference["metric"]
    assert resumed[f"final_test_{metric}"] == reference[f"final_test_{metric}"]
    assert resumed["final_train_loss"] == reference["final_train_loss"]


@pytest.mark.slow
def test_stop_at_epoch_boundary_and_rerun_of_a_finished_run(tmp_path, monkeypatch):
    overrides = [*CASES["fixed_lr"], "epochs=2", "progress=false"]
    reference = meta_train(compose(overrides=overrides), tmp_path / "ref")
    steps = len([r for r in read_metrics(tmp_path / "ref" / "metrics.jsonl") if r["type"] == "step"]) // 2
    signal_at(monkeypatch, steps)  # the runner polls after every step: this is the one that ends epoch 1
    with pytest.raises(RunInterrupted):
        meta_train(compose(overrides=overrides), tmp_path / "run")
    assert load_run_state(tmp_path / "run" / "run_state.pt")["progress"] is None
    monkeypatch.undo()
    meta_train(compose(overrides=overrides), tmp_path / "run")
    again = meta_train(compose(overrides=overrides), tmp_path / "run")  # finished: nothing left to train
    assert records(tmp_path / "run") == records(tmp_path / "ref")
    assert again["final_test_accuracy"] == reference["final_test_accuracy"]


def test_signal_is_handed_to_the_previous_handler_after_saving(tmp_path, monkeypatch):
    """Under submitit, SIGUSR2's handler requeues the job; it must run after run_state.pt is saved."""
    seen = []

    def requeue(signum, frame):
        seen.append((signum, load_run_state(tmp_path / "run" / "run_state.pt")["global_step"]))

    previous = signal.signal(signal.SIGUSR2, requeue)
    try:
        signal_at(monkeypatch, 5, signal.SIGUSR2)
        with pytest.raises(RunInterrupted, match="SIGUSR2"):
            meta_train(compose(overrides=[*CASES["fixed_lr"], "epochs=1", "progress=false"]), tmp_path / "run")
        assert seen == [(signal.SIGUSR2, 5)]
        assert signal.getsignal(signal.SIGUSR2) is requeue  # restored after the run
    finally:
        signal.signal(signal.SIGUSR2, previous)


@pytest.mark.slow
def test_resume_false_starts_over_and_a_changed_config_is_refused(tmp_path):
    overrides = [*CASES["fixed_lr"], "epochs=1", "progress=false"]
    meta_train(compose(overrides=overrides), tmp_path)
    with pytest.raises(ConfigError, match=re.escape("with optimizer.lr=0.1, this one has optimizer.lr=0.05")):
        meta_train(compose(overrides=[*overrides, "optimizer.lr=0.05"]), tmp_path)
    meta_train(compose(overrides=[*overrides, "optimizer.lr=0.05", "resume=false"]), tmp_path)
    assert {r["lr"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["type"] == "step"} == {0.05}


@pytest.mark.slow
def test_sigterm_kills_the_cli_and_rerunning_resumes_to_the_same_numbers(tmp_path):
    """The real thing: SIGTERM a `python -m mlrsnet.train` mid-training, run the command again."""
    overrides = ["+task=digits_mlp", "task.train_fraction=0.3", "batch_size=8", "epochs=3", "progress=false"]
    reference = meta_train(compose(overrides=overrides), tmp_path / "ref")
    argv = [sys.executable, "-m", "mlrsnet.train", *overrides, "hydra.run.dir=run"]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.is_file() and any(r["type"] == "epoch" for r in read_metrics(metrics)):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: stopped by SIGTERM"), err
    assert "hydra.run.dir=" in lines[0]

    again = run_cli(["mlrsnet.train", *overrides, "hydra.run.dir=run"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stdout
    assert records(tmp_path / "run") == records(tmp_path / "ref")
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert f'"final_test_accuracy": {reference["final_test_accuracy"]}' in summary
