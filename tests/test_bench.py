"""The schedule benchmark: end to end on a tiny task, fair tuning, same seeds, tables and plots."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from mlrsnet import bench as bench_module
from mlrsnet.bench import _fmt, _reached, bench, summarise, tune_lr, validate_bench
from mlrsnet.engine.build import build_run
from mlrsnet.engine.cli import compose
from mlrsnet.errors import ConfigError
from mlrsnet.tasks.base import ClassificationTask
from tests.conftest import REPO, run_cli

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["+task=digits_mlp", "task.train_fraction=0.05", "batch_size=16", "epochs=2", "progress=false",
        "schedules=[fixed,cosine,mlrsnet]", "seeds=[0,1]", "lr_grid=[0.5,1.0]", "target_metric=0.2"]


@pytest.fixture(scope="module")
def cfg() -> dict:
    return OmegaConf.to_container(compose("bench", TINY), resolve=True)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and much faster on a shared, busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def results(cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return out, bench(cfg, out)


@pytest.mark.slow
def test_bench_writes_the_table_the_csv_and_the_plots(results):
    out, res = results
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["schedule"], r["seed"]) for r in rows] == [
        (s, k) for s in ("fixed", "cosine", "mlrsnet") for k in ("0", "1")]
    assert all(r["status"] == "complete" and 0 <= float(r["final_test"]) <= 1 for r in rows)
    assert all(0 < float(r["confidence_mean"]) <= 1 and math.isfinite(float(r["loss_gap"])) for r in rows)
    # Every schedule under its own defaults: SGDM 0.9 for the baselines, SGD momentum 0 under MLR-SNet.
    optimizers = {r["schedule"]: r["optimizer"] for r in rows}
    assert optimizers["fixed"].startswith("SGD(momentum=0.9") and optimizers["cosine"].startswith("SGD(momentum=0.9")
    assert optimizers["mlrsnet"].startswith("SGD(momentum=0,")
    text = (out / "results.md").read_text()
    assert res["table"] in text
    main, tuning_part = text.split("Tuning:")
    body = [line for line in main.splitlines() if line.startswith("| ") and "schedule" not in line]
    assert [line.split(" | ")[0][2:] for line in body] == ["fixed", "cosine", "mlrsnet"]
    assert "±" in body[0] and "final test accuracy" in main and "epochs to 0.2" in main
    assert "| optimizer |" in main and "SGD(momentum=0.9" in body[0] and "SGD(momentum=0," in body[2]
    assert "×0.5 | ×1 |" in tuning_part and tuning_part.count("**") == 2 + 6
    for name in ("lr_curves.png", "metric_curves.png"):
        assert (out / name).read_bytes()[:8] == PNG
    tuning = list(csv.DictReader((out / "tuning.csv").open()))
    assert len(tuning) == 6 and sum(r["chosen"] == "True" for r in tuning) == 3
    for name in ("fixed", "cosine", "mlrsnet"):
        assert (out / "runs" / name / "seed0" / "metrics.jsonl").is_file()
        for tag in ("x0.5", "x1"):  # every tuning candidate is a run directory with its record
            record = json.loads((out / "tuning" / name / tag / "summary.json").read_text())
            assert record["status"] == "complete" and record["schedule"] == name
            assert record["final_test_accuracy"] is None and record["final_meta_accuracy"] is not None  # meta only


def test_chosen_multiplier_is_recorded_and_the_best_on_the_meta_split(results):
    out, res = results
    for name, candidates in res["tuning"].items():
        best = max(candidates, key=lambda c: (c["meta_accuracy"], -abs(math.log(c["lr_multiplier"]))))
        assert best["chosen"]
        assert all(r["lr_multiplier"] == best["lr_multiplier"] for r in res["rows"] if r["schedule"] == name)


def test_rerun_reuses_every_record(cfg, results, monkeypatch):
    out, res = results

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    # train_run reuses a finished run with the same fingerprint; only execute() trains
    monkeypatch.setattr(bench_module, "execute", no_training)
    again = bench(cfg, out)
    assert again["table"] == res["table"]


@pytest.mark.slow
def test_jobs_sharing_an_out_dir_write_one_table(cfg, tmp_path):
    small = {**cfg, "epochs": 1, "seeds": [0], "lr_grid": [1.0]}
    bench({**small, "schedules": ["fixed"]}, tmp_path)
    table = bench({**small, "schedules": ["cosine"]}, tmp_path)["table"]
    assert "| cosine |" in table and "| fixed |" in table
    # another fingerprint: its table gathers only its own runs
    other = bench({**small, "schedules": ["step"], "batch_size": 8}, tmp_path)["table"]
    assert "| step |" in other and "| cosine |" not in other and "| fixed |" not in other
    # a run directory holding a run of another configuration is never overwritten: a one-line error
    with pytest.raises(ConfigError, match="holds a run of another configuration"):
        bench({**small, "schedules": ["fixed"], "batch_size": 8}, tmp_path)


def test_tuning_never_evaluates_the_test_split(cfg, tmp_path, monkeypatch):
    splits = []
    evaluate = ClassificationTask.evaluate

    def spy(self, model, split="test"):
        splits.append(split)
        return evaluate(self, model, split)

    monkeypatch.setattr(ClassificationTask, "evaluate", spy)
    choice = tune_lr(validate_bench({**cfg, "epochs": 1}), ["cosine"], tmp_path)["cosine"]
    # the meta split scores the candidates; the test split never; nor the training split: cosine does not read L0
    # (only a schedule that declares needs_l0 measures it over the training split)
    assert set(splits) == {"meta"}
    assert choice["chosen"] in (0.5, 1.0) and len(choice["candidates"]) == 2


def test_one_seed_is_one_initialisation_and_data_order(cfg):
    (task_a, model_a), (task_b, model_b), (task_c, model_c) = (
        (run.task, run.model) for run in (build_run(validate_bench(cfg), seed=s) for s in (0, 0, 1)))
    params = [list(m.parameters()) for m in (model_a, model_b, model_c)]
    assert all(torch.equal(a, b) for a, b in zip(params[0], params[1], strict=True))
    assert not all(torch.equal(a, c) for a, c in zip(params[0], params[2], strict=True))
    first = [next(t.train_batches(0))[1] for t in (task_a, task_b, task_c)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])


def test_time_to_target_and_formatting():
    history = [{"epoch": 1, "epoch_time": 1.5, "m": 0.5}, {"epoch": 2, "epoch_time": 2.0, "m": 0.8}]
    assert _reached(history, "m", 0.7, higher=True) == (2.0, 3.5)
    assert all(math.isnan(v) for v in _reached(history, "m", 0.9, higher=True))
    assert _reached(history, "m", 0.6, higher=False) == (1.0, 1.5)
    assert _fmt([1.0, 3.0], 1) == "2.0 ± 1.4"
    assert _fmt([1.0, math.nan], 2) == "1.00 ± n/a (1/2)"
    assert _fmt([math.nan], 2) == "—"
    row = {"schedule": "x", "status": "diverged", "lr_multiplier": 1.0, "peak_lr": 1.0, "wall_time_s": 1.0,
           **{k: math.nan for k in ("final_test", "best_test", "epochs_to_target", "seconds_to_target",
                                    "loss_gap", "confidence_mean", "confidence_std")}}
    assert "| x (1 diverged) |" in summarise([row], "accuracy", None, [0])


def test_bad_bench_keys_are_one_line_errors(cfg, tmp_path):
    for key, value, match in (("schedules", ["fixed", "nope"], "unknown schedule 'nope'"),
                              ("lr_grid", [0.0], "lr_grid"), ("seeds", [], "seeds")):
        with pytest.raises(ConfigError, match=match):
            bench({**cfg, key: value}, tmp_path)


@pytest.mark.slow
def test_command_line_names_an_unknown_schedule_in_one_line(tmp_path):
    proc = run_cli(["mlrsnet.bench", "+task=digits_mlp", "schedules=[fixed,cosin]", f"out_dir={tmp_path}",
                    f"hydra.run.dir={tmp_path}/hydra"], cwd=REPO, timeout=120)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: unknown schedule 'cosin'") and "cosine" in last
