"""Every schedule name as an LR driver of the one training loop, and schedule=<name> in mlrsnet.train."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from mlrsnet.engine.build import initial_loss
from mlrsnet.engine.cli import compose
from mlrsnet.engine.config import TrainConfig, parse_config, schedule_choice
from mlrsnet.engine.loop import LoopConfig, train_loop
from mlrsnet.errors import ConfigError
from mlrsnet.schedules import registry
from mlrsnet.schedules.drivers import REPLACING, MetricDriver
from mlrsnet.schedules.optim import build_base_optimizer, resolve_optimizer
from mlrsnet.schedules.registry import build_driver, get_schedule, parse_params, schedule_names
from mlrsnet.schedules.spec import BuildContext
from mlrsnet.tasks import build_task
from mlrsnet.train import meta_train

META_TRAINED, FROZEN = "mlrsnet", "mlrsnet_frozen"
# 3 training steps per epoch: 5% of the digits training split in batches of 16.
OVERRIDES = ["+task=digits_mlp", "task.train_fraction=0.05", "batch_size=16", "epochs=1", "progress=false"]


@pytest.fixture(scope="module")
def raw() -> dict:
    """The composed config as a plain mapping (what mlrsnet.train parses)."""
    return OmegaConf.to_container(compose("train", OVERRIDES), resolve=True)


@pytest.fixture(scope="module")
def cfg(raw) -> TrainConfig:
    return parse_config(raw, "train")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and much faster on a shared, busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def seed0_task(task_cfg: str):
    return build_task(json.loads(task_cfg), 0, "cpu")


def fresh(cfg: TrainConfig, schedule: str, lr_multiplier: float = 1.0, **params):
    """A task, model and the schedule's optimiser and driver, all from seed 0 (the task is built once and
    deep-copied: the same data and generator states as a fresh build, at a tenth of the time)."""
    task = copy.deepcopy(seed0_task(json.dumps(dataclasses.asdict(cfg.task), sort_keys=True)))
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = build_base_optimizer(model.parameters(),
                                     resolve_optimizer(cfg.optimizer, get_schedule(schedule).optimizer))
    ctx = BuildContext(optimizer, model, task, cfg.epochs * task.steps_per_epoch, task.steps_per_epoch,
                       lr_multiplier, l0=initial_loss(task, model, 0), seed=0, net=cfg.net, meta=cfg.meta,
                       grad_clip=cfg.grad_clip)
    built = registry.build(schedule, ctx, parse_params(schedule, params))
    return task, model, built


def ctx_of(total_steps: int, steps_per_epoch: int, lr0: float) -> BuildContext:
    """The run a schedule's run-relative defaults are computed for: its length and its base LR."""
    model = torch.nn.Linear(1, 1)
    return BuildContext(torch.optim.SGD(model.parameters(), lr=lr0), model, None, total_steps, steps_per_epoch)


def run(task, model, built, splits=("meta",)) -> list[dict]:
    return train_loop(task, model, built.optimizer, built.driver, LoopConfig(epochs=1, progress=False,
                      eval_splits=splits), engine=built.engine)


@pytest.mark.parametrize("name", schedule_names())
def test_every_schedule_trains_three_steps(cfg, name):
    task, model, built = fresh(cfg, name)
    assert task.steps_per_epoch == 3
    before = [p.detach().clone() for p in model.parameters()]
    history = run(task, model, built)
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"])
    assert history[0]["lr_min"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    replacing = get_schedule(name).kind in REPLACING
    assert (type(built.optimizer) is not torch.optim.SGD) == replacing
    assert (built.engine is not None) == (name == META_TRAINED)


def test_unknown_schedule_is_a_one_line_error_listing_the_names(raw):
    with pytest.raises(ConfigError) as err:
        get_schedule("cosin")
    message = str(err.value)
    assert "\n" not in message and "cosine" in message and FROZEN in message and "sgd_hd" in message
    with pytest.raises(ConfigError, match="unknown schedule 'cosin'"):
        parse_config({**raw, "schedule": "cosin"}, "train")
    with pytest.raises(ConfigError, match="unknown schedule 'cosin'"):
        parse_config({**raw, "schedule": {"name": "cosin", "optimizer": {}}}, "train")


def test_defaults_are_relative_to_the_run_and_params_win(cfg):
    def defaults(name, total, per_epoch, lr0, given=None):
        return get_schedule(name).run_defaults(ctx_of(total, per_epoch, lr0), dict(given or {}))

    assert defaults("step", 90, 10, 0.1) == {"step_size": 30, "gamma": 0.1}
    assert defaults("multistep", 100, 10, 0.1)["milestones"] == [50, 75]
    assert defaults("multistep", 100, 10, 0.1)["gamma"] == 0.1
    assert defaults("exponential", 50, 10, 0.1)["gamma"] ** 50 == pytest.approx(0.01)
    assert defaults("sgdr", 70, 10, 0.1) == {"T_0": 10, "T_mult": 2}
    assert defaults("plateau", 200, 10, 0.1) == {"factor": 0.1, "patience": 2}
    assert defaults("lrbench", 100, 10, 0.1) == {"policy": "TRI2", "k0": pytest.approx(0.01), "k1": 0.1, "l": 25}
    assert defaults("autolr", 100, 50, 0.1) == {"interval": 50, "horizon": 10}
    assert defaults("sls", 100, 10, 0.1) == {"n_batches_per_epoch": 10}
    assert defaults("greedy_eval", 100, 12, 0.1) == {"eval_interval": 3}
    assert defaults("cosine", 100, 10, 0.1) == {}
    # The epoch form given by the user replaces the default it stands for.
    assert "step_size" not in defaults("step", 90, 10, 0.1, {"step_size_epochs": 1.0})
    assert "milestones" not in defaults("multistep", 90, 10, 0.1, {"milestones_epochs": [1.0]})
    assert "gamma" not in defaults("exponential", 90, 10, 0.1, {"gamma_per_epoch": 0.5})
    assert defaults("lrbench", 90, 10, 0.1, {"policy": "FIX"}) == {}
    # The epoch form given by the user replaces the default it stands for (no "not both" error).
    task, model, built = fresh(cfg, "step", step_size_epochs=1, gamma=0.5)
    assert built.driver.scheduler.step_size == 3 and built.driver.scheduler.gamma == 0.5
    _, _, built = fresh(cfg, "lrbench", policy="FIX", k0=0.02)
    assert built.optimizer.param_groups[0]["lr"] == pytest.approx(0.02)


def test_lr_multiplier_scales_each_kind_of_base_lr(cfg):
    base = cfg.optimizer.lr
    assert fresh(cfg, "cosine", 2.0)[2].optimizer.param_groups[0]["lr"] == pytest.approx(2 * base)
    assert fresh(cfg, "sgd_hd", 2.0)[2].optimizer.param_groups[0]["lr"] == pytest.approx(2 * base)
    assert fresh(cfg, "prodigy", 0.5)[2].optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    assert fresh(cfg, "adam_hd")[2].optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # SGD base
    one = float(fresh(cfg, META_TRAINED)[2].net.gamma)
    assert float(fresh(cfg, META_TRAINED, 3.0)[2].net.gamma) == pytest.approx(3 * one)
    lrbench = fresh(cfg, "lrbench", 2.0)[2].optimizer.param_groups[0]
    assert lrbench["lr_scale"] == 2.0 and lrbench["lr"] == pytest.approx(2.0 * base / 10)  # TRI2 starts at k0


def test_replacement_inherits_the_base_optimizers_hyperparameters(cfg):
    group = fresh(cfg, "sgd_hd")[2].optimizer.param_groups[0]
    assert cfg.optimizer.momentum is None  # the schedule's own: SGDM 0.9 for sgd_hd
    assert group["momentum"] == schedule_choice(cfg, "sgd_hd").optimizer["momentum"] == 0.9
    assert group["weight_decay"] == cfg.optimizer.weight_decay


def test_schedule_free_is_evaluated_at_its_averaged_point(cfg, monkeypatch):
    task, model, built = fresh(cfg, "sgd_schedulefree")
    modes = []
    evaluate = type(task).evaluate

    def spy(self, model, split="test"):
        modes.append(built.optimizer.param_groups[0]["train_mode"])
        return evaluate(self, model, split)

    monkeypatch.setattr(type(task), "evaluate", spy)
    run(task, model, built, splits=("test", "meta"))
    assert modes == [False, False]
    assert built.optimizer.param_groups[0]["train_mode"]


def test_line_search_steps_through_the_closure(cfg):
    """The loop hands SLS a closure on the current batch: each accepted step satisfies Armijo's
    condition f(w - eta g) <= f(w) - c eta |g|^2 on that batch, and the weights move."""
    task, model, built = fresh(cfg, "sls")
    opt = built.optimizer
    before = [p.detach().clone() for p in model.parameters()]
    held = []
    step = type(opt).step

    def spy(self, closure=None):
        out = step(self, closure)
        held.append((self.last_armijo_held, self.last_loss, self.last_loss_next, self.step_size,
                     self.last_grad_norm_sq))
        return out

    type(opt).step = spy
    try:
        run(task, model, built)
    finally:
        type(opt).step = step
    assert len(held) == task.steps_per_epoch
    for armijo, loss, loss_next, eta, grad_sq in held:
        assert armijo and loss_next <= loss - opt.c * eta * grad_sq < loss
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_autolr_probes_do_not_change_the_data_order(cfg):
    task, model, built = fresh(cfg, "autolr", interval=1, horizon=2)
    run(task, model, built)
    assert len(built.driver.tuner.history) == 3
    plain_task, plain_model, plain = fresh(cfg, "fixed")
    run(plain_task, plain_model, plain)
    assert torch.equal(task.generator.get_state(), plain_task.generator.get_state())


def test_plateau_steps_on_the_meta_split_and_refuses_the_test_split(cfg):
    task, model, built = fresh(cfg, "plateau", patience=0, factor=0.5)
    assert built.driver.metric_key == "meta_loss"
    with pytest.raises(ConfigError, match="test split"):
        fresh(cfg, "plateau", metric_key="test_loss")


def test_greedy_driver_state_round_trips(cfg):
    """A GreedyLR driver restored from its state dict (with the model, optimiser and data order)
    trains on exactly as the original: the same LRs and losses in the next epoch, the same weights."""
    params = {"patience": 1, "factor": 0.5, "min_lr": 1e-4}
    task, model, built = fresh(cfg, "greedy", **params)
    run(task, model, built)
    saved = copy.deepcopy((model.state_dict(), built.optimizer.state_dict(), built.driver.state_dict(),
                           task.rng_state()))
    other_task, other_model, other = fresh(cfg, "greedy", **params)
    assert isinstance(other.driver, MetricDriver)
    other_model.load_state_dict(saved[0])
    other.optimizer.load_state_dict(saved[1])
    other.driver.load_state_dict(saved[2])
    other_task.set_rng_state(saved[3])
    assert other.driver.scheduler.optimizer is other.optimizer
    lrs = {"original": [], "restored": []}
    for key, (t, m, b) in {"original": (task, model, built), "restored": (other_task, other_model, other)}.items():
        for _ in range(2):
            history = run(t, m, b)
            lrs[key].append({k: v for k, v in history[0].items() if "time" not in k})
    assert lrs["original"] == lrs["restored"]
    assert len({(h["lr_min"], h["lr_max"]) for h in lrs["original"]}) > 1  # GreedyLR moved the LR
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other_model.parameters(), strict=True))


def test_fixed_rejects_parameters(cfg):
    task, model, _ = fresh(cfg, "fixed")
    optimizer = build_base_optimizer(model.parameters(), resolve_optimizer(cfg.optimizer, {}))
    with pytest.raises(ConfigError, match="unknown config key schedule.lr"):  # fixed declares no parameters
        build_driver("fixed", optimizer, model, task, total_steps=3, steps_per_epoch=3, params={"lr": 1})


def test_mlrsnet_needs_the_train_builder(cfg):
    # build_driver has no run `net` / `meta` sections to build a meta-trained MLR-SNet from: a one-line
    # ConfigError naming the builder that has them (build_run, or registry.build with a full BuildContext).
    task, model, _ = fresh(cfg, "fixed")
    optimizer = build_base_optimizer(model.parameters(), resolve_optimizer(cfg.optimizer, {}))
    with pytest.raises(ConfigError, match="mlrsnet"):
        build_driver(META_TRAINED, optimizer, model, task, total_steps=3, steps_per_epoch=3)


def test_train_accepts_any_schedule_name(raw, tmp_path):
    run_cfg = {**raw, "schedule": "cosine", "schedule_params": {"cosine": {"warmup_steps": 1}}}
    summary = meta_train(run_cfg, tmp_path)
    assert summary["schedule"] == "cosine"
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in steps if r["type"] == "step"]
    assert lrs[0] < lrs[1]  # the warmup ramp
    assert (tmp_path / "lr_schedule.png").is_file()
