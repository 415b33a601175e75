"""LLM fine-tuning policies (warmup_constant / warmup_linear / warmup_cosine) and GreedyLR on the eval loss."""

from __future__ import annotations

import math

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.drivers import EvalLossDriver
from mlrsnet.schedules.registry import build_driver, build_scheduler, schedule_names, schedule_node


def _lrs(name: str, total: int, **params) -> list[float]:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(name, opt, total_steps=total, steps_per_epoch=10, **params)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_is_three_percent_of_the_run_then_each_policy_decays_its_way():
    total = 200  # warmup W = ceil(0.03 * 200) = 6 steps, from 1e-3 of the LR
    for name in ("warmup_constant", "warmup_linear", "warmup_cosine"):
        lrs = _lrs(name, total)
        assert lrs[0] == pytest.approx(1e-3)
        assert lrs[3] == pytest.approx(1e-3 + (1 - 1e-3) * 3 / 6)
        assert lrs[6] == pytest.approx(1.0)
    const, lin, cos = (_lrs(n, total) for n in ("warmup_constant", "warmup_linear", "warmup_cosine"))
    assert all(v == pytest.approx(1.0) for v in const[6:])
    horizon = total - 6
    for t in (6, 50, 103, 199):
        assert lin[t] == pytest.approx(1 - (t - 6) / horizon)
        assert cos[t] == pytest.approx(0.5 * (1 + math.cos(math.pi * (t - 6) / horizon)))


def test_warmup_ratio_and_explicit_steps():
    assert _lrs("warmup_linear", 100, warmup_ratio=0.2)[10] == pytest.approx(1e-3 + (1 - 1e-3) * 0.5)
    assert _lrs("warmup_constant", 100, warmup_steps=4)[4] == pytest.approx(1.0)
    assert _lrs("warmup_constant", 100, warmup_ratio=0.0)[0] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="warmup_ratio"):
        _lrs("warmup_cosine", 100, warmup_ratio=1.5)


class _EvalTask:
    """A task whose meta-validation loss follows a script (GreedyLR's input)."""

    def __init__(self, losses: list[float]) -> None:
        self.losses = list(losses)
        self.calls = 0

    def evaluate(self, model, split="test"):
        assert split == "meta"
        self.calls += 1
        return {"loss": self.losses[self.calls - 1]}


def test_greedy_eval_steps_greedylr_on_the_meta_loss_every_interval():
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    task = _EvalTask([3.0, 2.0, 1.0, 2.0, 3.0, 4.0])
    opt, driver = build_driver("greedy_eval", opt, model, task, total_steps=100, steps_per_epoch=12,
                               lr_multiplier=2.0)
    assert isinstance(driver, EvalLossDriver) and driver.eval_interval == 3  # steps per epoch // 4
    lrs = []
    for _ in range(18):
        driver.after_step(torch.tensor(0.0))
        lrs.append(opt.param_groups[0]["lr"])
    assert task.calls == 6
    # patience 1, factor 0.7: two improvements in a row raise the LR 1/0.7x, two non-improvements lower it.
    base = 2e-3
    assert lrs[:5] == pytest.approx([base] * 5)
    assert lrs[5] == pytest.approx(base / 0.7)  # after evaluations 3.0, 2.0 (two improvements)
    assert lrs[8] == pytest.approx(base / 0.7)  # 1.0: one more improvement, the streak restarted
    assert lrs[14] == pytest.approx(base)        # 2.0, 3.0: two non-improvements
    state = driver.state_dict()
    driver.after_step(torch.tensor(0.0))
    driver.load_state_dict(state)
    assert driver.step == 18


def test_every_new_schedule_has_its_config_node_and_it_builds():
    model = torch.nn.Linear(1, 1)
    for name in ("warmup_constant", "warmup_linear", "warmup_cosine", "greedy_eval"):
        assert name in schedule_names()
        conf = schedule_node(name)  # what schedule=<name> composes
        assert conf["name"] == name and conf["optimizer"] == {}
        params = {k: v for k, v in conf.items() if k not in ("name", "optimizer")}
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        _, driver = build_driver(name, opt, model, _EvalTask([1.0] * 10), total_steps=40, steps_per_epoch=10,
                                 params=params)
        driver.after_step(torch.tensor(1.0))
