"""schedule=wsd (warmup-stable-decay): its factor against the formula, as a scheduler, and in every command that
takes a schedule (train, bench, transfer compare), with its parameters' ranges checked."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from mlrsnet.bench import bench
from mlrsnet.engine.cli import compose
from mlrsnet.errors import ConfigError
from mlrsnet.schedules.catalog.wsd import wsd_factor
from mlrsnet.schedules.registry import build_scheduler, schedule_names, simplicity_order
from mlrsnet.train import meta_train
from mlrsnet.transfer import transfer

TINY = ["+task=digits_mlp", "epochs=2", "progress=false", "task.train_fraction=0.5"]


def test_the_factor_warms_up_holds_then_decays():
    total, warmup, decay = 100, 10, 20
    f = [wsd_factor(t, total, warmup, decay, "linear") for t in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)  # linear warmup to lr0
    assert all(v == 1.0 for v in f[10:80])  # stable
    assert f[80] == 1.0 and f[90] == pytest.approx(0.5) and f[99] == pytest.approx(1 / 20)  # linear decay
    g = [wsd_factor(t, total, 0, decay, "1-sqrt", final_factor=0.1) for t in range(total)]
    assert g[0] == 1.0 and g[90] == pytest.approx(0.1 + 0.9 * (1 - math.sqrt(0.5)))
    assert all(a >= b for a, b in zip(g[80:], g[81:], strict=False))  # non-increasing in the decay
    assert min(g) > 0.1


def test_as_a_scheduler_it_follows_the_factor():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    sched = build_scheduler("wsd", opt, total_steps=50, steps_per_epoch=10, warmup_fraction=0.1,
                            decay_fraction=0.4, decay="linear")
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.5 * wsd_factor(t, 50, 5, 20, "linear") for t in range(50)])


def test_it_is_a_schedule_by_its_declaration_alone():
    assert "wsd" in schedule_names() and "wsd" in simplicity_order()
    cfg = compose("train", [*TINY, "schedule=wsd"])
    assert cfg.schedule.name == "wsd" and cfg.schedule.optimizer.momentum == 0.9  # an SGDM baseline
    assert cfg.schedule.decay_fraction == 0.2 and cfg.schedule.decay == "1-sqrt"


def test_train_runs_it_with_its_parameters(tmp_path):
    summary = meta_train(compose("train", [*TINY, "schedule=wsd", "schedule.decay=linear",
                                           "schedule.decay_fraction=0.5"]), tmp_path / "run")
    assert summary["status"] == "complete" and summary["schedule"] == "wsd"
    with open(tmp_path / "run" / "lr_schedule.csv") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    total = len(lrs)
    assert lrs == pytest.approx([0.1 * wsd_factor(t, total, 0, round(0.5 * total), "linear") for t in range(total)])


@pytest.mark.parametrize(("override", "fragment"), [
    ("schedule.decay_fraction=0", "schedule.decay_fraction must be in (0, 1]"),
    ("schedule.decay=cosine", "schedule.decay='cosine' is not one of 1-sqrt, linear"),
    ("schedule.warmup_fraction=0.9", "must sum to at most 1"),
])
def test_bad_parameters_are_one_line_errors(tmp_path, override, fragment):
    with pytest.raises(ConfigError) as info:
        meta_train(compose("train", [*TINY, "schedule=wsd", override]), tmp_path / "run")
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_bench_and_transfer_compare_run_it(tmp_path):
    out = bench(compose("bench", [*TINY, "epochs=1", "schedules=[fixed,wsd]", "seeds=[0]", "tune=false"]),
                tmp_path / "bench")
    assert [r["schedule"] for r in out["rows"]] == ["fixed", "wsd"]
    assert all(r["status"] == "complete" for r in out["rows"])
    summary = transfer(compose("transfer", ["+query=digits_mlp", "epochs=1", "progress=false",
                                            "task.train_fraction=0.5", "compare=[wsd]"]), tmp_path / "transfer")
    assert set(summary["comparison"]) == {"mlrsnet", "wsd"}
