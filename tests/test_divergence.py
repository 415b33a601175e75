"""Divergence guard: NaN / inf losses and learned LRs outside the bounds stop the run with a message
naming the step, loss and LR (the last good state kept), or roll back and lower the LR."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mlrsnet.engine.log import read_metrics
from mlrsnet.engine.loop import Diverged, Guard
from mlrsnet.engine.resume import load_run_state
from mlrsnet.errors import DivergenceError
from mlrsnet.train import meta_train
from tests.conftest import compose, run_cli

TINY = ["+task=digits_mlp", "task.train_fraction=0.3", "batch_size=32", "progress=false"]


def test_guard_names_the_first_bad_step():
    losses = torch.tensor([1.0, 0.9, math.inf, math.nan])
    lrs = torch.tensor([0.1, 0.1, 0.1, 0.1], dtype=torch.float64)
    none = torch.zeros(4, dtype=torch.bool)
    with pytest.raises(Diverged) as info:
        Guard().check(losses, lrs, torch.zeros(4), none, first_step=100, epoch=3)
    assert (info.value.step, info.value.epoch, info.value.reason) == (102, 3, "non-finite loss")
    lrs[1] = 2.0
    with pytest.raises(Diverged, match=r"step 101 .*outside the guard's bounds \[0, 1\]"):
        Guard(lr_max=1.0).check(losses, lrs, torch.zeros(4), none, first_step=100, epoch=3)
    meta = torch.tensor([0.5, math.nan, 0.0, 0.0])
    with pytest.raises(Diverged, match="non-finite meta loss"):
        Guard().check(torch.ones(4), torch.ones(4, dtype=torch.float64), meta, torch.ones(4, dtype=torch.bool), 0, 1)
    Guard().check(torch.ones(4), torch.ones(4, dtype=torch.float64), meta, none, 0, 1)  # no meta step there


@pytest.mark.slow
def test_nan_loss_stops_the_cli_with_one_line_and_keeps_the_last_good_state(tmp_path):
    # the explosion bound is off here so that the loss runs on to NaN (tests/test_reliability.py covers the bound)
    r = run_cli(["mlrsnet.train", *TINY, "schedule=fixed", "optimizer.lr=1e4", "epochs=2", "guard.max_loss_factor=null",
                 "hydra.run.dir=run"], cwd=tmp_path)
    assert r.returncode == 3, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("error: training diverged at step ") and "non-finite loss" in line
    assert "loss nan" in line and "lr 1e+04" in line and "guard.on_divergence=rollback" in line
    run = tmp_path / "run"
    state = load_run_state(run / "run_state.pt")
    assert state["epoch"] == 0 and state["global_step"] == 0  # the last good state: before the bad epoch
    divergence = read_metrics(run / "metrics.jsonl")[-1]
    assert divergence["type"] == "divergence" and divergence["action"] == "stop"
    assert f"step {divergence['step']} " in line
    summary = json.loads((run / "summary.json").read_text())  # the run's record: diverged, and why
    assert summary["status"] == "diverged" and summary["error"] == line.removeprefix("error: ")
    assert summary["rollbacks"] == 0 and summary["schedule"] == "fixed" and summary["task"] == "digits_mlp"


@pytest.mark.slow
def test_learned_lr_above_the_bound_stops(tmp_path):
    with pytest.raises(DivergenceError, match=r"step 0 \(epoch 1\): learning rate outside the guard's bounds") as e:
        meta_train(compose(overrides=[*TINY, "epochs=1", "guard.lr_max=1e-4"]), tmp_path)
    assert e.value.exit_code == 3 and "lower net.gamma" in str(e.value)


def test_rollback_restores_the_last_good_state_and_lowers_the_lr(tmp_path):
    summary = meta_train(compose(overrides=[
        *TINY, "schedule=fixed", "optimizer.lr=1e4", "epochs=2", "guard.on_divergence=rollback",
        "guard.lr_factor=1e-5",
    ]), tmp_path)
    assert summary["status"] == "complete" and summary["rollbacks"] == 1
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[0]["type"] == "divergence" and records[0]["action"] == "rollback"
    steps = [r for r in records if r["type"] == "step"]
    assert [r["step"] for r in steps] == list(range(len(steps)))  # the bad epoch was not logged twice
    assert all(r["lr"] == pytest.approx(0.1) for r in steps)
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2]


@pytest.mark.slow
def test_rollback_of_mlrsnet_lowers_gamma_and_gives_up_after_max_rollbacks(tmp_path):
    summary = meta_train(compose(overrides=[
        *TINY, "epochs=1", "net.gamma=1e5", "guard.on_divergence=rollback", "guard.lr_factor=1e-5",
    ]), tmp_path / "a")
    assert summary["rollbacks"] == 1 and summary["gamma"] == pytest.approx(1.0)
    with pytest.raises(DivergenceError, match="diverged"):
        meta_train(compose(overrides=[
            *TINY, "epochs=1", "net.gamma=1e5", "guard.on_divergence=rollback", "guard.lr_factor=0.5",
            "guard.max_rollbacks=2",
        ]), tmp_path / "b")
    actions = [r["action"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if r["type"] == "divergence"]
    assert actions == ["rollback", "rollback", "stop"]


@pytest.mark.slow
def test_a_rollback_is_saved_at_once_so_a_crash_before_the_next_save_resumes_from_it(tmp_path, monkeypatch):
    # recover() writes the rolled-back state (its count, the lower LR, the metrics position) before training
    # goes on: a run killed before the next epoch's save resumes after the rollback, not before it.
    from mlrsnet.engine.resume import Checkpointer

    class Killed(Exception):
        pass

    def on_epoch_end(self, epoch, global_step, history):
        raise Killed

    cfg = [*TINY, "schedule=fixed", "optimizer.lr=1e4", "epochs=2", "guard.on_divergence=rollback",
           "guard.lr_factor=1e-5"]
    monkeypatch.setattr(Checkpointer, "on_epoch_end", on_epoch_end)
    with pytest.raises(Killed):
        meta_train(compose(overrides=cfg), tmp_path)
    state = load_run_state(tmp_path / "run_state.pt")
    assert state["rollbacks"] == 1 and state["epoch"] == 0 and state["global_step"] == 0
    logged = read_metrics(tmp_path / "metrics.jsonl")
    kept = (tmp_path / "metrics.jsonl").read_bytes()[: state["metrics_bytes"]].decode().splitlines()
    assert json.loads(kept[-1])["action"] == "rollback" and len(logged) > len(kept)
    monkeypatch.undo()
    summary = meta_train(compose(overrides=cfg), tmp_path)
    assert summary["status"] == "complete" and summary["rollbacks"] == 1
    assert all(r["lr"] == pytest.approx(0.1) for r in read_metrics(tmp_path / "metrics.jsonl") if r["type"] == "step")


@pytest.mark.slow
def test_a_rollback_past_unsaved_epochs_removes_their_lines(tmp_path):
    # save_every=2: the last save before a divergence in epoch 2 is the start, so epoch 1's lines are
    # already in metrics.jsonl; the rollback replays epoch 1 and must not leave it there twice.
    summary = meta_train(compose(overrides=[
        *TINY, "schedule=exponential", "schedule.gamma=1.2", "optimizer.lr=0.01", "guard.lr_max=0.1", "epochs=3",
        "save_every=2", "guard.on_divergence=rollback", "guard.lr_factor=1e-3",
    ]), tmp_path)
    assert summary["status"] == "complete" and summary["rollbacks"] == 1
    records = read_metrics(tmp_path / "metrics.jsonl")
    divergence = next(r for r in records if r["type"] == "divergence")
    assert divergence["epoch"] == 2 and divergence["last_good_epoch"] == 0
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2, 3]
    steps = [r["step"] for r in records if r["type"] == "step"]
    assert steps == list(range(len(steps)))
