import math

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.builtin import TORCH_SCHEDULES, build_torch_scheduler

TOTAL, PER_EPOCH = 20, 5


def _lrs(name, n=TOTAL, metric=1.0, **kw):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0, momentum=0.9)
    sch = build_torch_scheduler(name, opt, TOTAL, PER_EPOCH, **kw)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step(metric) if name == "plateau" else sch.step()
    return out


REQUIRED = {"step": {"step_size": 4}, "multistep": {"milestones": [5]}, "exponential": {"gamma": 0.9},
            "sgdr": {"T_0": 5}}


@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULES))
def test_each_name_builds_and_steps_within_bounds(name):
    lrs = _lrs(name, **REQUIRED.get(name, {}))
    assert len(lrs) == TOTAL and all(0.0 <= lr <= 1.0 + 1e-12 for lr in lrs)


def test_epoch_parameters_are_converted_to_iterations():
    assert _lrs("step", step_size_epochs=1)[:11] == pytest.approx([1.0] * 5 + [0.1] * 5 + [0.01])
    assert _lrs("multistep", milestones_epochs=[2, 3], gamma=0.5)[9:16] == pytest.approx(
        [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25])
    assert _lrs("exponential", gamma_per_epoch=0.5)[10] == pytest.approx(0.25)
    assert _lrs("sgdr", T_0_epochs=1)[5] == pytest.approx(1.0)


def test_warmup_then_cosine_hits_the_expected_values():
    warm, s = 4, 0.1
    lrs = _lrs("cosine", warmup_steps=warm, warmup_start_factor=s)
    for t in range(warm):
        assert lrs[t] == pytest.approx(s + (1 - s) * t / warm)
    T = TOTAL - warm
    for t in range(warm, TOTAL):
        assert lrs[t] == pytest.approx(0.5 * (1 + math.cos(math.pi * (t - warm) / T)))


def test_warmup_epochs_and_absolute_milestones():
    lrs = _lrs("multistep", warmup_epochs=1, milestones=[8], warmup_start_factor=0.5)
    assert lrs[:10] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 0.1, 0.1])


def test_linear_decays_to_end_factor_over_the_run():
    lrs = _lrs("linear", end_factor=0.5)
    assert lrs[0] == 1.0 and lrs[10] == pytest.approx(0.75) and lrs[-1] == pytest.approx(0.5 + 0.5 / TOTAL)


def test_onecycle_peaks_at_max_lr():
    lrs = _lrs("onecycle", max_lr=2.0, pct_start=0.25)
    assert max(lrs) == pytest.approx(2.0) and lrs.index(max(lrs)) == 4


def test_plateau_reduces_after_patience_calls():
    assert _lrs("plateau", n=6, patience=2, factor=0.5) == pytest.approx([1.0] * 4 + [0.5] * 2)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("nope", {}),
        ("step", {}),
        ("step", {"step_size": 2, "step_size_epochs": 1}),
        ("cosine", {"milestones": [3]}),
        ("onecycle", {"warmup_steps": 2}),
        ("cosine", {"warmup_steps": TOTAL}),
        ("multistep", {"milestones": [2], "warmup_steps": 3}),
        ("exponential", {}),
        ("linear", {"end_factor": 3.0}),
    ],
)
def test_bad_configuration_raises_config_error(name, kw):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError):
        build_torch_scheduler(name, opt, TOTAL, PER_EPOCH, **kw)
