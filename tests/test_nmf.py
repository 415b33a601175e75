"""The stochastic NMF testbed (mlrsnet/tasks/nmf.py): its stability bound, projection, held-out metric, and
``safe=true`` (SafeDriver) clipping any schedule to the bound."""

from __future__ import annotations

import math

import pytest
import torch

from mlrsnet.engine.build import build_run
from mlrsnet.engine.cli import compose
from mlrsnet.engine.config import parse_config
from mlrsnet.engine.loop import train_loop
from mlrsnet.errors import ConfigError
from mlrsnet.schedules.drivers import SafeDriver
from mlrsnet.tasks import build_task
from mlrsnet.tasks.nmf import nmf_stability_bound

SMALL = {"name": "nmf_synthetic", "dataset": "nmf_synthetic", "model": "nmf", "rows": 60, "cols": 20,
         "true_rank": 4, "rank": 4, "noise_level": 0.1, "batch_size": 60, "meta_batch_size": 60}


def _full_batch(task):
    rows = torch.arange(task.x.shape[0])
    return task._batch(rows, "train")


def _projected_step(model, task, batch, lr):
    """One full-batch projected SGD step at ``lr`` (times the bound when ``lr`` is callable); returns the
    loss before and after."""
    model.zero_grad()
    loss = task.train_loss(model, batch)
    loss.backward()
    eta = lr(task.stability_bound(model)) if callable(lr) else lr
    with torch.no_grad():
        for p in model.parameters():
            p -= eta * p.grad
    task.after_step(model)
    with torch.no_grad():
        return float(loss), float(task.loss(model, batch))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lr_just_below_the_bound_never_increases_the_full_batch_loss(seed):
    task = build_task(SMALL, seed, "cpu")
    torch.manual_seed(seed)
    model = task.build_model()
    batch = _full_batch(task)
    for _ in range(100):
        before, after = _projected_step(model, task, batch, lambda bound: 0.99 * bound)
        assert after <= before + 1e-6 * before
    with torch.no_grad():
        start = float(task.loss(build_task(SMALL, seed, "cpu").build_model(), batch))
    assert after < 0.2 * start


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_constant_lr_well_above_the_bound_increases_the_loss(seed):
    task = build_task(SMALL, seed, "cpu")
    torch.manual_seed(seed)
    model = task.build_model()
    batch = _full_batch(task)
    task.train_loss(model, batch)
    lr = 3.0 * task.stability_bound(model)
    increases = []
    for _ in range(10):
        before, after = _projected_step(model, task, batch, lr)
        increases.append(after > before)
    assert any(increases)


def test_bound_formula_matches_the_eigenvalues():
    g = torch.Generator().manual_seed(0)
    w, h = torch.rand(8, 3, generator=g), torch.rand(3, 5, generator=g)
    l_h = torch.linalg.eigvalsh(w.T @ w)[-1] / 8
    l_w = torch.linalg.eigvalsh(h @ h.T)[-1] / 8
    assert nmf_stability_bound(w, h) == pytest.approx(float(1 / max(l_h, l_w)), rel=1e-6)
    r = torch.rand(8, 5, generator=g)
    res = torch.linalg.matrix_norm(r, ord=2) / 8
    assert nmf_stability_bound(w, h, r) == pytest.approx(float(2 / (2 * max(l_h, l_w) + res)), rel=1e-6)


def test_synthetic_instance_is_fresh_per_seed_and_digits_is_the_digits_matrix():
    a, b = build_task(SMALL, 0, "cpu"), build_task(SMALL, 1, "cpu")
    assert not torch.equal(a.x, b.x)
    assert torch.equal(a.x, build_task(SMALL, 0, "cpu").x)
    assert bool((a.x >= 0).all())
    total = sum(a.masks.values())
    assert bool((total == 1).all())  # every entry in exactly one of train / meta / test
    d = build_task({"name": "nmf_digits", "dataset": "nmf_digits", "model": "nmf", "rank": 10, "batch_size": 32,
                    "meta_batch_size": 100}, 0, "cpu")
    assert tuple(d.x.shape) == (1797, 64) and float(d.x.max()) == 1.0
    assert d.info.metric == "rel_error" and not d.info.higher_is_better


def _cfg(*overrides):
    return parse_config(compose("train", ["+task=nmf_synthetic", "epochs=3", "progress=false", "task.rows=64",
                                      "task.cols=16", "task.rank=4", "task.true_rank=4", *overrides]), "train")


def test_nmf_trains_through_the_one_loop_with_any_schedule_and_stays_nonnegative():
    for schedule in ("cosine", "greedy", "sgd_hd"):
        run = build_run(_cfg(f"schedule={schedule}"))
        hist = train_loop(run.task, run.train_model, run.optimizer, run.driver, run.loop_config("t", progress=False))
        assert bool((run.model.W >= 0).all()) and bool((run.model.H >= 0).all())
        assert hist[-1]["meta_rel_error"] < hist[0]["meta_rel_error"]
        assert set(hist[-1]) >= {"test_rel_error", "meta_rel_error", "test_loss"}


def test_the_loop_projects_after_every_step(monkeypatch):
    """Without the task's after_step hook the factors leave the feasible set; with it they never do."""
    from mlrsnet.tasks.nmf import NMFTask

    def train(seen: list[float]) -> None:
        run = build_run(_cfg("schedule=fixed", "optimizer.lr=0.5", "epochs=2"))
        original = run.driver.after_step

        def record(loss):
            seen.append(min(float(run.model.W.detach().min()), float(run.model.H.detach().min())))
            original(loss)

        run.driver.after_step = record
        train_loop(run.task, run.train_model, run.optimizer, run.driver, run.loop_config("t", progress=False))

    projected: list[float] = []
    train(projected)
    assert min(projected) >= 0
    monkeypatch.setattr(NMFTask, "after_step", lambda self, model: None)
    unprojected: list[float] = []
    train(unprojected)
    assert min(unprojected) < 0


def test_safe_clips_any_schedule_to_the_bound():
    run = build_run(_cfg("schedule=cosine", "optimizer.lr=100", "+schedule_params.cosine.safe=true"))
    assert isinstance(run.driver, SafeDriver)
    bounds, lrs = [], []
    inner_before = run.driver.before_step

    def spy(loss):
        inner_before(loss)
        bounds.append(run.driver.bound)
        lrs.append(run.optimizer.param_groups[0]["lr"])

    run.driver.before_step = spy
    hist = train_loop(run.task, run.train_model, run.optimizer, run.driver, run.loop_config("t", progress=False))
    assert all(lr <= b * (1 + 1e-12) for lr, b in zip(lrs, bounds, strict=True))
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in hist)
    # each step's LR is min(cosine, bound): the cosine schedule carries on from its own LR, not the clipped one
    total = len(lrs)
    cosine = [100 * (1 + math.cos(math.pi * t / total)) / 2 for t in range(total)]
    assert lrs == pytest.approx([min(c, b) for c, b in zip(cosine, bounds, strict=True)], rel=1e-9, abs=1e-12)
    assert sum(c > b for c, b in zip(cosine, bounds, strict=True)) > total // 2  # the clip was active
    unsafe = build_run(_cfg("schedule=cosine", "optimizer.lr=100"))
    bad = train_loop(unsafe.task, unsafe.train_model, unsafe.optimizer, unsafe.driver,
                     unsafe.loop_config("t", progress=False, guard=None))
    assert not torch.isfinite(torch.tensor(bad[-1]["train_loss"])) or bad[-1]["train_loss"] > 1e3


def test_safe_on_a_task_without_a_bound_is_a_config_error():
    for safe in ("+schedule_params.cosine.safe=true", "schedule.safe=true"):
        cfg = parse_config(compose("train", ["+task=digits_mlp", "schedule=cosine", safe]), "train")
        with pytest.raises(ConfigError, match="stability bound"):
            build_run(cfg)
