import copy
import random

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.greedy import GreedyLR


def _opt(*lrs):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=1.0)


def _make(lr=0.5, **kw):
    kw = {"factor": 0.5, "patience": 2, "min_lr": 0.01, "max_lr": 10.0, "reset_start": None, **kw}
    return GreedyLR(_opt(lr), **kw)


def _feed(sch, metrics):
    out = []
    for m in metrics:
        sch.step(m)
        out.append(sch.get_last_lr()[0])
    return out


def test_falls_exactly_after_patience_plus_one_bad_steps():
    # The first value always improves on best=inf; then three non-improvements with patience=2.
    assert _feed(_make(), [1.0, 1.0, 1.0, 1.0, 1.0]) == [0.5, 0.5, 0.5, 0.25, 0.25]


def test_rises_exactly_after_patience_plus_one_good_steps():
    assert _feed(_make(), [10.0, 9.0, 8.0, 7.0]) == [0.5, 0.5, 1.0, 1.0]


def test_bounds():
    assert _feed(_make(max_lr=0.6, patience=0), [3.0, 2.0, 1.0]) == [0.6, 0.6, 0.6]
    assert _feed(_make(min_lr=0.2, patience=0), [1.0, 1.0, 1.0, 1.0]) == [1.0, 0.5, 0.25, 0.2]


def test_no_change_during_cooldown_even_on_good_steps():
    sch = _make(patience=0, cooldown=2, max_lr=0.5)
    # fall at step 2; steps 3-4 are the hold (a bad and a good one); step 5 falls again.
    assert _feed(sch, [1.0, 1.0, 1.0, 0.0, 5.0]) == [0.5, 0.25, 0.25, 0.25, 0.125]
    assert sch.best == 1.0  # the 0.0 came during the hold and was not compared


def test_no_change_during_warmup_even_on_bad_steps():
    sch = _make(patience=0, warmup=2)
    # rise at step 1; steps 2-3 are the hold (a bad and a good one); step 4 rises again.
    assert _feed(sch, [9.0, 10.0, 1.0, 0.5]) == [1.0, 1.0, 1.0, 2.0]


def test_smoothing_compares_the_rolling_mean():
    # Raw 4, 8, 1 is good, bad, good; the window-3 means 4, 6, 4.33 are good, bad, bad.
    assert _feed(_make(patience=1), [4.0, 8.0, 1.0]) == [0.5, 0.5, 0.5]
    smoothed = _make(patience=1, smooth=True, window_size=3)
    assert _feed(smoothed, [4.0, 8.0, 1.0]) == [0.5, 0.5, 0.25]
    smoothed.step(3.0)
    assert list(smoothed.window) == [8.0, 1.0, 3.0] and smoothed.best == 4.0


def test_reset_after_reset_start_steps_at_min_lr():
    sch = _make(patience=0, max_lr=0.5, min_lr=0.125, reset_start=3)
    lrs = _feed(sch, [1.0] * 6)
    assert lrs == [0.5, 0.25, 0.125, 0.125, 0.5, 0.5]
    # state restarted at step 5 (the third fall attempted at min_lr), then one good step
    assert sch.reset_countdown == 3 and sch.best == 1.0


def test_max_mode():
    assert _feed(_make(mode="max"), [1.0, 2.0, 3.0]) == [0.5, 0.5, 1.0]
    assert _feed(_make(mode="max"), [3.0, 2.0, 1.0, 0.0]) == [0.5, 0.5, 0.5, 0.25]


def test_relative_threshold():
    # best = 10, far from 1, so that the relative bound (9.0) and the absolute one (9.9) differ
    sch = _make(threshold=0.1, threshold_mode="rel")
    sch.step(10.0)
    sch.step(9.5)  # needs < 9.0 to count (an absolute threshold would accept it)
    assert sch.best == 10.0 and sch.num_bad_steps == 1
    sch.step(8.5)
    assert sch.best == 8.5 and sch.num_good_steps == 1


def test_relative_threshold_in_max_mode():
    """Guards the direction of the relative threshold in max mode: an improvement must beat
    best * (1 + threshold); below that (an inverted best * (1 - threshold) would accept it, and so would
    an absolute threshold at best = 10) it is a bad step."""
    rel = GreedyLR(_opt(0.5), mode="max", threshold=0.1, threshold_mode="rel")
    assert not rel.is_better(10.9, 10.0) and rel.is_better(11.1, 10.0)
    # best 10 after the first value; +5% steps are not improvements at a 10% threshold: the LR falls
    assert _feed(_make(mode="max", threshold=0.1, threshold_mode="rel", patience=1),
                 [10.0, 10.5, 10.8, 10.9]) == [0.5, 0.5, 0.25, 0.25]
    # +20% steps are: the LR rises
    assert _feed(_make(mode="max", threshold=0.1, threshold_mode="rel", patience=1),
                 [10.0, 12.0, 14.4, 18.0]) == [0.5, 1.0, 1.0, 2.0]


def test_absolute_threshold_in_both_modes():
    """An absolute threshold is added in the direction of improvement: max mode needs m > best + t,
    min mode m < best - t."""
    up = GreedyLR(_opt(0.5), mode="max", threshold=0.5)
    assert not up.is_better(1.3, 1.0) and up.is_better(1.6, 1.0)
    down = GreedyLR(_opt(0.5), mode="min", threshold=0.5)
    assert not down.is_better(0.7, 1.0) and down.is_better(0.4, 1.0)


def test_several_param_groups_with_per_group_bounds():
    sch = GreedyLR(_opt(0.5, 0.05), factor=0.5, patience=0, min_lr=[0.01, 0.04], max_lr=[0.5, 0.5],
                   reset_start=None)
    sch.step(1.0)
    assert sch.get_last_lr() == [0.5, 0.1]  # a rise; group 0 is already at its max_lr
    sch.step(1.0)
    sch.step(1.0)
    assert sch.get_last_lr() == [0.125, 0.04]
    assert [g["lr"] for g in sch.optimizer.param_groups] == [0.125, 0.04]


def test_state_dict_round_trip_behaves_identically():
    rng = random.Random(0)
    metrics = [rng.uniform(0, 1) for _ in range(200)]
    kw = {"factor": 0.7, "patience": 1, "cooldown": 1, "warmup": 2, "min_lr": 0.05, "max_lr": 2.0,
          "smooth": True, "window_size": 4, "reset_start": 5}
    a = GreedyLR(_opt(0.5, 0.1), **kw)
    _feed(a, metrics[:57])
    saved_sched, saved_opt = copy.deepcopy(a.state_dict()), copy.deepcopy(a.optimizer.state_dict())

    b = GreedyLR(_opt(0.3, 0.3), **kw)
    b.optimizer.load_state_dict(saved_opt)
    b.load_state_dict(saved_sched)
    for m in metrics[57:]:
        a.step(m)
        b.step(m)
        assert a.get_last_lr() == b.get_last_lr()


@pytest.mark.parametrize("kw,names", [({"factor": 1.0}, "factor"), ({"factor": 1.5}, "factor"),
                                      ({"mode": "up"}, "mode"), ({"threshold_mode": "pct"}, "threshold_mode"),
                                      ({"patience": -1}, "patience"),
                                      ({"min_lr": 2.0, "max_lr": 1.0}, "min_lr"), ({"min_lr": [0.1, 0.2]}, "min_lr")])
def test_bad_parameters(kw, names):
    with pytest.raises(ConfigError, match=f"GreedyLR: {names}"):
        GreedyLR(_opt(0.5), **kw)
