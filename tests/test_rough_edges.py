"""The rough edges a new user hit: Ctrl-C, rollbacks, step lines at a stop, misleading messages, Adam's
gamma, and the small things (help text, progress label, report of a benchmark, plot titles, a float loss)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mlrsnet.checkpoint import load_nets
from mlrsnet.engine.cli import interrupted_message
from mlrsnet.engine.log import read_metrics
from mlrsnet.engine.resume import StopSignals, load_run_state
from mlrsnet.errors import CheckpointError, RunInterrupted
from mlrsnet.io import load
from mlrsnet.net import MLRSNet
from mlrsnet.train import meta_train, validate
from tests.conftest import compose, run_cli, signal_at

TINY = ["+task=digits_mlp", "task.train_fraction=0.3", "batch_size=32", "progress=false", "snapshots=0"]



def test_ctrl_c_saves_writes_the_unfinished_epochs_steps_and_says_how_to_resume(tmp_path, monkeypatch):
    signal_at(monkeypatch, 7, signal.SIGINT)
    with pytest.raises(RunInterrupted) as info:
        meta_train(compose(overrides=[*TINY, "schedule=fixed", "epochs=2"]), tmp_path)
    message = str(info.value)
    assert message.startswith("stopped by SIGINT after step 7 (0 epochs complete)") and "\n" not in message
    assert f"hydra.run.dir={tmp_path}" in message and str(tmp_path / "run_state.pt") in message
    state = load_run_state(tmp_path / "run_state.pt")
    assert state["global_step"] == 7 and state["epoch"] == 0
    steps = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["type"] == "step"]
    assert steps == list(range(7))  # the stop wrote the unfinished epoch's step lines
    assert os.path.getsize(tmp_path / "metrics.jsonl") == state["metrics_bytes"]


def test_ctrl_c_just_after_the_first_save_still_stops_at_a_step_with_the_saved_state(tmp_path, monkeypatch):
    # A Ctrl-C that lands once run_state.pt exists but before the first step (the window a user, or the
    # command-line test below under load, can hit) stops like any other: exit 75 and a resumable state.
    from mlrsnet.engine.resume import Checkpointer

    real, calls = Checkpointer.save, []

    def save(self, *args, **kwargs):
        real(self, *args, **kwargs)
        calls.append(args)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Checkpointer, "save", save)
    with pytest.raises(RunInterrupted) as info:
        meta_train(compose(overrides=[*TINY, "schedule=fixed", "epochs=2"]), tmp_path)
    assert "stopped by SIGINT after step 1 (0 epochs complete)" in str(info.value)
    assert load_run_state(tmp_path / "run_state.pt")["global_step"] == 1


def test_a_second_ctrl_c_interrupts_at_once():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested() and stop.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs at the next bytecode boundary
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.slow
def test_ctrl_c_on_the_command_line_is_one_line_and_the_same_command_resumes(tmp_path):
    # Long enough (about 1,700 steps, seconds of training) that the Ctrl-C, sent as soon as the first
    # run_state.pt appears, lands inside the training loop even when this test process wakes late on a
    # loaded machine; a Ctrl-C after the loop is the other exit (130, test below), not this one.
    args = [*TINY, "task.train_fraction=1.0", "batch_size=4", "schedule=fixed", "epochs=6", "hydra.run.dir=run"]
    proc = subprocess.Popen([sys.executable, "-m", "mlrsnet.train", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    state = tmp_path / "run" / "run_state.pt"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not state.is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    lines = err.strip().splitlines()
    assert proc.returncode == 75, err[-3000:]
    assert len(lines) == 1 and "stopped by SIGINT after step" in lines[0]
    assert "rerun the same command to continue" in lines[0] and f"(hydra.run.dir={tmp_path / 'run'})" in lines[0]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    again = run_cli(["mlrsnet.train", *args], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout


def test_the_message_of_an_interrupt_outside_the_loop_names_the_saved_state(tmp_path):
    assert "before anything was saved" in interrupted_message(tmp_path, "train")
    (tmp_path / "run_state.pt").write_bytes(b"")
    message = interrupted_message(tmp_path, "train")
    assert str(tmp_path / "run_state.pt") in message and f"hydra.run.dir={tmp_path}" in message


@pytest.mark.slow
def test_each_rollback_prints_one_line(tmp_path, capsys):
    summary = meta_train(compose(overrides=[
        *TINY, "schedule=fixed", "optimizer.lr=1e4", "epochs=2", "guard.on_divergence=rollback",
        "guard.lr_factor=1e-5", "guard.max_loss_factor=null",  # the non-finite rule, not the explosion rule
    ]), tmp_path)
    assert summary["rollbacks"] == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if "rolled back" in line]
    assert len(lines) == 1
    assert "non-finite loss" in lines[0] and "end of epoch 0" in lines[0] and "x1e-05" in lines[0]
    assert "rollback 1 of at most 3" in lines[0]


def test_step_lines_reach_the_file_within_an_epoch(tmp_path):
    """With a flush interval of 0, every step's line is written as the step ends (no epoch line yet)."""
    from mlrsnet.engine.build import build_run
    from mlrsnet.engine.log import RunLogger
    from mlrsnet.engine.loop import train_loop

    cfg = validate(compose(overrides=[*TINY, "schedule=fixed", "epochs=1"]))
    run = build_run(cfg)
    logger = RunLogger(tmp_path)
    seen = []

    def before_step(loss, _real=run.driver.before_step):
        seen.append(sum(1 for r in read_metrics(tmp_path / "metrics.jsonl") if r["type"] == "step"))
        return _real(loss)

    run.driver.before_step = before_step
    train_loop(run.task, run.train_model, run.optimizer, run.driver,
               run.loop_config("t", flush_seconds=0.0), logger=logger)
    logger.close()
    assert seen == list(range(len(seen)))
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records if r["type"] == "step"] == list(range(run.task.steps_per_epoch))
    assert records[-1]["type"] == "epoch"


def test_a_directory_given_as_checkpoint_is_named_as_such(tmp_path):
    with pytest.raises(CheckpointError) as info:
        load_nets(tmp_path)
    assert "is a directory" in str(info.value) and "does not exist" not in str(info.value)
    assert str(tmp_path / "mlrsnet.pt") in str(info.value)
    with pytest.raises(CheckpointError, match="is a directory, not a file"):
        load(tmp_path, "run_state")


def test_adam_with_the_sgd_gamma_warns_in_one_line(capsys):
    from mlrsnet.engine.build import build_run

    build_run(validate(compose(overrides=[*TINY, "optimizer.name=adam"])))
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "optimizer.name=adam" in warning[0] and "net.gamma=" in warning[0]
    build_run(validate(compose(overrides=[*TINY, "optimizer.name=adam", "net.gamma=0.002"])))
    build_run(validate(compose(overrides=TINY)))
    assert "warning:" not in capsys.readouterr().err


def test_gamma_optimizer_starts_mlrsnet_at_the_optimizer_lr(capsys):
    """net.gamma=optimizer: gamma is twice the optimizer's LR (times the LR multiplier a benchmark tunes), so a
    fresh net's first LR, about gamma / 2, is the LR the optimizer is configured with; no SGD-scale warning."""
    from mlrsnet.engine.build import build_run

    run = build_run(validate(compose(overrides=[*TINY, "optimizer.name=adamw", "optimizer.lr=0.003",
                                                "net.gamma=optimizer"])))
    assert float(run.net.gamma) == pytest.approx(0.006)
    assert "warning:" not in capsys.readouterr().err
    with torch.no_grad():  # the first LR: the fresh net's output for the initial loss, from the zero state
        lr, _ = run.net(float(run.l0) / run.task.info.loss_scale, None)
    assert 0.0015 < float(lr) < 0.0045  # gamma times a sigmoid near its midpoint: within 50% of optimizer.lr
    tuned = build_run(validate(compose(overrides=[*TINY, "optimizer.name=adamw", "optimizer.lr=0.003",
                                                  "net.gamma=optimizer"])), lr_multiplier=0.5)
    assert float(tuned.net.gamma) == pytest.approx(0.003)


def test_frozen_mlrsnet_under_adam_with_the_recomputed_gamma_warns_naming_schedule_gamma(capsys, recwarn):
    from mlrsnet.engine.build import build_run

    frozen = [*TINY, "schedule=mlrsnet_frozen", "optimizer.name=adam"]
    build_run(validate(compose(overrides=frozen)))
    assert not [w for w in recwarn if "MLRSNetScheduler" in str(w.message)]  # not said twice
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "optimizer.name=adam" in warning[0] and "schedule.gamma=" in warning[0]
    build_run(validate(compose(overrides=[*frozen, "schedule.gamma=0.002"])))
    build_run(validate(compose(overrides=[*TINY, "schedule=mlrsnet_frozen"])))  # SGD: the recomputed gamma fits
    assert "warning:" not in capsys.readouterr().err


def test_a_benchmark_warns_naming_the_key_that_sets_its_frozen_mlrsnets_gamma(tmp_path, capsys):
    """In a benchmark, mlrsnet_frozen is one of `schedules`, set by schedule_params.mlrsnet_frozen.* (its
    schedule.* keys belong to the chosen schedule of train.yaml, mlrsnet): the warning names that key."""
    from mlrsnet.bench import bench

    bench(compose("bench", [*TINY, "epochs=1", "optimizer.name=adam", "schedules=[mlrsnet_frozen]", "seeds=[0]",
                            "tune=false"]), tmp_path)
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "optimizer.name=adam" in warning[0]
    assert "schedule_params.mlrsnet_frozen.gamma=" in warning[0]


def test_mlrsnet_step_takes_a_float_like_the_scheduler():
    net = MLRSNet(gamma=1.0)
    twin = MLRSNet(gamma=1.0)
    twin.load_state_dict(net.state_dict())
    assert torch.equal(net.step(2.3), twin.step(torch.tensor(2.3)))


@pytest.mark.parametrize(("module", "group", "other"), [("mlrsnet.train", "task", "query"),
                                                         ("mlrsnet.transfer", "query", "task")])
@pytest.mark.slow
def test_help_names_the_command_and_only_its_own_group(module, group, other, tmp_path):
    proc = run_cli([module, "--help"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "powered by Hydra" not in proc.stdout
    assert f"python -m {module} +{group}=NAME" in proc.stdout and "digits_mlp" in proc.stdout
    assert f"+{other}=" not in proc.stdout  # train's help listed the query group


def test_progress_bar_labels_the_test_metric(tmp_path, capsys):
    meta_train(compose(overrides=[*TINY, "schedule=fixed", "epochs=1", "progress=true"]), tmp_path)
    err = capsys.readouterr().err
    assert "test_acc=" in err and " accu=" not in err


@pytest.mark.slow
def test_report_of_a_benchmark_directory(tmp_path):
    from mlrsnet.bench import bench
    from mlrsnet.report import report

    cfg = compose("bench", [*TINY, "epochs=1", "schedules=[fixed,cosine]", "seeds=[0,1]", "tune=false"])
    bench(cfg, tmp_path)
    table = report(tmp_path, "json")
    rows = {r["schedule"]: r for r in json.loads(table)}
    assert set(rows) == {"fixed", "cosine"}
    assert all(r["n"] == 2 and r["final_test_accuracy"]["count"] == 2 for r in rows.values())


def test_plot_titles_name_the_task_not_the_timestamp(tmp_path):
    from mlrsnet.engine.figures import run_label

    run = tmp_path / "2026-12-01_02-50-31-123456_99-abcd"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"task": "digits_mlp", "schedule": "cosine", "seed": 2}))
    assert run_label(run) == "digits_mlp [cosine, seed 2]"
    assert run_label(Path(tmp_path)) == tmp_path.name  # nothing to go by


@pytest.mark.slow
def test_a_launcher_without_its_plugin_names_the_extra_to_install(tmp_path):
    """The README's sweep example after `pip install -e .` (no plugin): one line naming the extra."""
    code = ("import sys; sys.modules['hydra_plugins.hydra_submitit_launcher'] = None; "
            "sys.argv = ['train', '-m', '+task=digits_mlp', 'seed=0,1', 'hydra/launcher=local']; "
            "from mlrsnet.train import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'mlrsnet[slurm]'" in lines[0]
