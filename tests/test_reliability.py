"""Nothing lost, round 2 (issue 31): every command is as safe as train, because every run goes through the one
runner (mlrsnet.engine.runner): unique locked directories, a stop signal saves and exits 75 and the same command
resumes exactly, a reused directory never mixes two runs, and bad input is one line."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pytest
import torch

from mlrsnet.bench import bench
from mlrsnet.engine.cli import compose
from mlrsnet.engine.config import parse_config
from mlrsnet.engine.log import read_metrics
from mlrsnet.ensemble.study import lrensemble
from mlrsnet.errors import ConfigError, DivergenceError, RunInterrupted
from mlrsnet.rundir import exclusive
from mlrsnet.schedules.scheduler import MLRSNetScheduler
from mlrsnet.train import meta_train
from mlrsnet.transfer import transfer
from tests.conftest import run_cli, signal_at

TINY = ["+task=digits_mlp", "progress=false", "task.train_fraction=0.3"]



def lines(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "epoch_time"} for r in read_metrics(path)]


@pytest.mark.parametrize("config_name", ["ensemble", "rl"])
def test_every_command_names_its_runs_uniquely(config_name):
    """Two ensembles (or RL runs) started in the same second got one directory; now the name has the
    sub-second time and a per-process suffix, as train's."""
    from hydra.core.utils import setup_globals

    setup_globals()
    task = "+task=nmf_synthetic" if config_name == "rl" else "+task=digits_mlp"
    dirs = {str(compose(config_name, [task], return_hydra_config=True).hydra.run.dir) for _ in range(3)}
    assert len(dirs) == 3


@pytest.mark.slow
def test_bench_stopped_by_sigterm_saves_exits_75_and_the_same_call_resumes_exactly(tmp_path, monkeypatch):
    overrides = [*TINY, "epochs=2", "schedules=[cosine,mlrsnet]", "seeds=[0]", "tune=false", "jobs=1"]  # in-process
    reference = bench(compose("bench", overrides), tmp_path / "ref")
    first_run = json.loads((tmp_path / "ref" / "runs" / "cosine" / "seed0" / "summary.json").read_text())["steps"]
    signal_at(monkeypatch, first_run + 3)  # in the second run, mlrsnet
    with pytest.raises(RunInterrupted, match="stopped by SIGTERM") as info:
        bench(compose("bench", overrides), tmp_path / "b")
    assert info.value.exit_code == 75
    assert (tmp_path / "b" / "runs" / "mlrsnet" / "seed0" / "run_state.pt").is_file()  # the run in flight saved
    monkeypatch.undo()
    again = bench(compose("bench", overrides), tmp_path / "b")
    assert [r["final_test"] for r in again["rows"]] == [r["final_test"] for r in reference["rows"]]
    for name in ("cosine", "mlrsnet"):
        assert lines(tmp_path / "b" / "runs" / name / "seed0" / "metrics.jsonl") == \
            lines(tmp_path / "ref" / "runs" / name / "seed0" / "metrics.jsonl")


@pytest.mark.slow
def test_transfer_stopped_resumes_to_the_same_numbers_and_keeps_finished_runs(tmp_path, monkeypatch):
    overrides = ["+query=digits_mlp", "epochs=2", "progress=false", "task.train_fraction=0.3", "compare=[cosine]"]
    reference = transfer(compose("transfer", overrides), tmp_path / "ref")
    signal_at(monkeypatch, reference["steps"] + 3)  # in the comparison run
    with pytest.raises(RunInterrupted):
        transfer(compose("transfer", overrides), tmp_path / "t")
    mlrsnet_summary = (tmp_path / "t" / "summary.json").stat().st_mtime_ns
    monkeypatch.undo()
    again = transfer(compose("transfer", overrides), tmp_path / "t")
    assert again["comparison"] == reference["comparison"]
    assert lines(tmp_path / "t" / "compare" / "cosine" / "metrics.jsonl") == \
        lines(tmp_path / "ref" / "compare" / "cosine" / "metrics.jsonl")
    assert (tmp_path / "t" / "summary.json").stat().st_mtime_ns >= mlrsnet_summary


@pytest.mark.slow
def test_ensemble_stopped_resumes_its_member_and_reuses_the_finished_ones(tmp_path, monkeypatch):
    overrides = [*TINY, "epochs=2", "seeds=[0]", "pool=[{name: cosine},{name: multistep}]"]
    reference = lrensemble(compose("ensemble", overrides), tmp_path / "ref")
    steps = json.loads((tmp_path / "ref" / "members" / "seed0" / "cosine@x1" / "summary.json").read_text())["steps"]
    signal_at(monkeypatch, steps + 3)  # in the second member
    with pytest.raises(RunInterrupted):
        lrensemble(compose("ensemble", overrides), tmp_path / "e")
    first = tmp_path / "e" / "members" / "seed0" / "cosine@x1" / "summary.json"
    finished_at = first.stat().st_mtime_ns
    monkeypatch.undo()
    again = lrensemble(compose("ensemble", overrides), tmp_path / "e")
    assert again["rows"] == reference["rows"]
    assert first.stat().st_mtime_ns == finished_at  # reused, not retrained


@pytest.mark.slow
def test_resume_false_into_a_used_directory_leaves_nothing_of_the_earlier_run(tmp_path):
    run = tmp_path / "run"
    meta_train(compose("train", [*TINY, "epochs=5", "snapshots=5"]), run)
    assert len(list((run / "snapshots").iterdir())) == 5
    meta_train(compose("train", [*TINY, "epochs=2", "snapshots=2", "resume=false"]), run)
    epochs = sorted(int(p.stem[-4:]) for p in (run / "snapshots").iterdir())
    assert epochs == [0, 1, 2]  # snapshots 0 and 2, and the bundle's epoch 1; none of the 5-epoch run
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2


@pytest.mark.slow
def test_lowering_epochs_on_resume_is_refused_in_one_line(tmp_path):
    meta_train(compose("train", [*TINY, "epochs=4", "schedule=fixed"]), tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        meta_train(compose("train", [*TINY, "epochs=2", "schedule=fixed"]), tmp_path / "run")
    assert "4 epochs complete" in str(info.value) and "epochs=4 or more" in str(info.value)


def test_a_bench_directory_of_another_config_is_refused(tmp_path):
    bench(compose("bench", [*TINY, "epochs=1", "schedules=[fixed]", "seeds=[0]", "tune=false"]), tmp_path / "b")
    with pytest.raises(ConfigError, match="holds a run of another configuration"):
        bench(compose("bench", [*TINY, "epochs=1", "schedules=[fixed]", "seeds=[0]", "tune=false",
                                "optimizer.lr=0.05"]), tmp_path / "b")


def test_the_tables_of_a_shared_out_dir_are_written_one_process_at_a_time(tmp_path):
    order = []

    def hold() -> None:
        with exclusive(tmp_path / ".tables.lock"):
            order.append("a in")
            time.sleep(0.5)
            order.append("a out")

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.1)
    with exclusive(tmp_path / ".tables.lock"):
        order.append("b in")
    t.join()
    assert order == ["a in", "a out", "b in"]


def test_bench_tables_have_n_and_no_fake_spread_for_one_seed(tmp_path):
    out = bench(compose("bench", [*TINY, "epochs=1", "schedules=[fixed]", "seeds=[0]", "tune=false"]), tmp_path)
    row = next(line for line in out["table"].splitlines() if line.startswith("| fixed"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "1" and "± n/a" in cells[5] and "± 0.0000" not in row
    with pytest.raises(ConfigError, match="distinct integers"):
        parse_config(compose("bench", [*TINY, "seeds=[0,0]"]), "bench")


@pytest.mark.parametrize(("overrides", "fragment"), [
    (["rl.total_timesteps=16"], "is less than one PPO rollout (rl.ppo.n_steps=256)"),
])
def test_an_rl_budget_below_one_rollout_is_refused(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(compose("rl", ["+task=nmf_synthetic", *overrides]), "rl")
    assert fragment in str(info.value)


@pytest.mark.slow
def test_a_finite_loss_explosion_is_a_divergence(tmp_path):
    """schedule=fixed optimizer.lr=5: the loss reached 2.4e6 and the run ended "done" at 9.65% with rc 0."""
    overrides = ["+task=digits_mlp", "progress=false", "epochs=2", "schedule=fixed", "optimizer.lr=5"]
    with pytest.raises(DivergenceError, match="loss above the guard's bound"):
        meta_train(compose("train", overrides), tmp_path / "stop")
    summary = meta_train(compose("train", [*overrides, "guard.on_divergence=rollback", "guard.max_rollbacks=6"]),
                         tmp_path / "rollback")
    assert summary["rollbacks"] >= 1 and summary["status"] == "complete"
    plain = meta_train(compose("train", [*overrides, "guard.max_loss_factor=null"]), tmp_path / "off")
    assert plain["status"] == "complete" and plain["rollbacks"] == 0  # the rule is an option


def test_the_scheduler_refuses_a_non_finite_loss_in_one_line():
    p = torch.nn.Parameter(torch.zeros(2))
    sched = MLRSNetScheduler(torch.optim.SGD([p], lr=0.1), total_steps=10, num_classes=10)
    sched.step(torch.tensor(2.3))
    for bad in (math.nan, torch.tensor(math.inf)):
        with pytest.raises(DivergenceError) as info:
            sched.step(bad)
        assert "non-finite loss" in str(info.value) and "\n" not in str(info.value)
    assert all(math.isfinite(float(g["lr"])) for g in sched.optimizer.param_groups)


@pytest.mark.parametrize(("argv", "fragment"), [
    (["mlrsnet.transfer", "+query=digits_mlp", "checkpoint=/tmp/surely_missing_mlrsnet.pt"],
     "checkpoint /tmp/surely_missing_mlrsnet.pt does not exist"),
    (["mlrsnet.train", "+task=digits_mlp", "schedule=fixed", "task.meta_size=0"], "task.meta_size must be >= 1"),
    (["mlrsnet.bench", "+task=digits_mlp", "task.meta_size=0"], "task.meta_size must be >= 1"),
    (["mlrsnet.train", "+task=digits_mlp", "schedule=cosine", "schedule.eta_min=-1"],
     "schedule.eta_min must be >= 0"),
])
@pytest.mark.slow
def test_bad_input_is_one_line_exit_2_and_no_run_directory(tmp_path, argv, fragment):
    proc = run_cli([*argv, "progress=false"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    out = proc.stderr.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("error: ") and fragment in out[0], proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_from_bench_names_the_seeds_the_bench_has(tmp_path):
    bench(compose("bench", [*TINY, "epochs=1", "schedules=[fixed,cosine]", "seeds=[0,1]", "tune=false"]),
          tmp_path / "b")
    with pytest.raises(ConfigError, match=r"its runs have seeds \[0, 1\]: set seeds=\[0,1\]"):
        lrensemble(compose("ensemble", [*TINY, f"from_bench={tmp_path / 'b'}"]), tmp_path / "e")


@pytest.mark.slow
def test_a_log_that_is_not_a_terminal_gets_one_line_per_epoch_not_a_bar(tmp_path):
    proc = run_cli(["mlrsnet.train", "+task=digits_mlp", "epochs=2", "task.train_fraction=0.3", "schedule=fixed"],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stderr + proc.stdout  # no progress bar redrawn into the log
    epochs = [line for line in proc.stdout.splitlines() if " epoch " in line]
    assert len(epochs) == 2 and epochs[0].startswith("digits_mlp [fixed] epoch 1/2: loss ")


COMMANDS = {
    "bench": (bench, "bench", [*TINY, "epochs=2", "schedules=[fixed]", "seeds=[0]", "tune=false"]),
    "transfer": (transfer, "transfer", ["+query=digits_mlp", "epochs=2", "progress=false", "task.train_fraction=0.3"]),
    "ensemble": (lrensemble, "ensemble", [*TINY, "epochs=2", "seeds=[0]", "pool=[{name: fixed}]"]),
}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name a descriptor's file")
@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.slow
def test_a_full_disk_in_any_command_is_one_line_and_the_same_call_resumes(tmp_path, monkeypatch, command):
    from mlrsnet.errors import WriteError
    from tests.test_disk_faults import fill_disk_at

    study, config_name, overrides = COMMANDS[command]
    reference = study(compose(config_name, overrides), tmp_path / "ref")
    fill_disk_at(monkeypatch, 2)  # the save after the first epoch
    with pytest.raises(WriteError) as info:
        study(compose(config_name, overrides), tmp_path / "out")
    assert "\n" not in str(info.value) and "No space left on device" in str(info.value)
    monkeypatch.undo()
    again = study(compose(config_name, overrides), tmp_path / "out")
    def finals(out: dict) -> list:
        if command == "transfer":
            return [out["final_test_accuracy"]]
        return [r.get("final_test", r.get("test_accuracy")) for r in out["rows"]]

    assert finals(again) == finals(reference)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_corrupt_run_state_in_any_command_is_one_line(tmp_path, monkeypatch, command):
    from mlrsnet.errors import CheckpointError

    study, config_name, overrides = COMMANDS[command]
    signal_at(monkeypatch, 3)
    with pytest.raises(RunInterrupted):
        study(compose(config_name, overrides), tmp_path / "out")
    monkeypatch.undo()
    state = next((tmp_path / "out").rglob("run_state.pt"))
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(CheckpointError) as info:
        study(compose(config_name, overrides), tmp_path / "out")
    assert "cannot resume" in str(info.value) and "\n" not in str(info.value)
