import io
import math

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.lrbench import Composite, LRBenchScheduler, available_policies, lr_at, schedule

CYC = {"k0": 0.0, "k1": 1.0, "l": 10}
SHIFTED = {"k0": 0.1, "k1": 1.1, "l": 10}
C02 = 0.5 * (1 + math.cos(0.2 * math.pi))  # 0.5(1 + cos(pi/5)): COS at t = 2, l = 10
R2 = math.sqrt(2) / 2

# (policy, params, t, value computed by hand from the formulas in the module docstring)
CASES = [
    ("FIX", {"k0": 0.1}, 123, 0.1),
    ("STEP", {"k0": 0.1, "gamma": 0.5, "l": 100}, 250, 0.025),
    ("STEP", {"k0": 0.1, "gamma": 0.5, "l": 100}, 99, 0.1),
    ("NSTEP", {"k0": 1.0, "gamma": 0.1, "l": [100, 150]}, 99, 1.0),
    ("NSTEP", {"k0": 1.0, "gamma": 0.1, "l": [100, 150]}, 100, 0.1),
    ("NSTEP", {"k0": 1.0, "gamma": 0.1, "l": [100, 150]}, 150, 0.01),
    ("EXP", {"k0": 2.0, "gamma": 0.5}, 3, 0.25),
    ("INV", {"k0": 1.0, "gamma": 0.5, "p": 2}, 4, 1 / 9),
    ("POLY", {"k0": 0.01, "k1": 0.11, "p": 2, "l": 100}, 0, 0.11),
    ("POLY", {"k0": 0.01, "k1": 0.11, "p": 2, "l": 100}, 50, 0.035),
    ("POLY", {"k0": 0.01, "k1": 0.11, "p": 2, "l": 100}, 200, 0.01),
    ("SIG", {"k0": 1.0, "gamma": 1.0, "l": 10}, 10, 0.5),
    ("SIG", {"k0": 1.0, "gamma": 1.0, "l": 10}, 12, 1 / (1 + math.exp(-2))),
    ("SIG", {"k0": 1.0, "gamma": 1.0, "l": 10**6}, 0, 0.0),
    ("TRI", SHIFTED, 0, 0.1),
    ("TRI", SHIFTED, 5, 0.6),
    ("TRI", SHIFTED, 10, 1.1),
    ("TRI", SHIFTED, 15, 0.6),
    ("TRI", SHIFTED, 20, 0.1),
    ("TRID", SHIFTED, 0, 1.1),
    ("TRID", SHIFTED, 10, 0.1),
    ("TRID", SHIFTED, 15, 0.6),
    ("TRI2", SHIFTED, 25, 0.1 + 0.5 / 2),
    ("TRI2", SHIFTED, 45, 0.1 + 0.5 / 4),
    ("TRID2", SHIFTED, 20, 0.1 + 1.0 / 2),
    ("TRIEXP", {**SHIFTED, "gamma": 0.9}, 5, 0.1 + 0.5 * 0.9**5),
    ("TRIDEXP", {**SHIFTED, "gamma": 0.9}, 2, 0.1 + 0.8 * 0.9**2),
    ("SIN", CYC, 5, R2),
    ("SIN", CYC, 10, 1.0),
    ("SIN", CYC, 20, 0.0),
    ("SIND", CYC, 0, 1.0),
    ("SIND", CYC, 5, R2),
    ("SIND", CYC, 10, 0.0),
    ("SIN2", CYC, 30, 0.5),
    ("SIND2", CYC, 20, 0.5),
    ("SINEXP", {**CYC, "gamma": 0.9}, 10, 0.9**10),
    ("SINDEXP", {**CYC, "gamma": 0.9}, 5, R2 * 0.9**5),
    ("COS", CYC, 0, 1.0),
    ("COS", CYC, 5, 0.5),
    ("COS", CYC, 10, 0.0),
    ("COS", CYC, 20, 1.0),
    ("UPCOS", CYC, 0, 0.0),
    ("UPCOS", CYC, 10, 1.0),
    ("UPCOS", CYC, 2, 1 - C02),
    ("COS2", CYC, 20, 0.5),
    ("COS2", CYC, 40, 0.25),
    ("UPCOS2", CYC, 30, 0.5),
    ("COSEXP", {**CYC, "gamma": 0.5}, 2, C02 * 0.25),
    ("UPCOSEXP", {**CYC, "gamma": 0.5}, 10, 0.5**10),
    ("RSW", CYC, 0, 0.0),
    ("RSW", CYC, 5, 0.5),
    ("RSW", CYC, 9, 0.1),
    ("RSW", CYC, 10, 0.0),
    ("RSW2", CYC, 15, 0.25),
    ("RSW2", CYC, 25, 0.125),
    ("RSWEXP", {**CYC, "gamma": 0.5}, 1, 0.45),
    ("SINRSW", CYC, 5, R2),
    ("SINRSW", CYC, 10, 0.0),
    ("SINRSW2", CYC, 15, R2 / 2),
    ("SINRSWEXP", {**CYC, "gamma": 0.5}, 2, math.cos(0.1 * math.pi) * 0.25),
    ("COSRSW", CYC, 2, C02),
    ("COSRSW", CYC, 5, 0.5),
    ("COSRSW", CYC, 10, 0.0),
    ("COSRSW2", CYC, 12, C02 / 2),
    ("COSRSWEXP", {**CYC, "gamma": 0.5}, 5, 0.5 * 0.5**5),
]


@pytest.mark.parametrize("policy,params,t,expected", CASES)
def test_value_matches_formula(policy, params, t, expected):
    assert lr_at(policy, t, **params) == pytest.approx(expected, abs=1e-12)


def test_every_policy_has_a_hand_computed_case():
    covered = {case[0] for case in CASES} | {"COMPOSITE"}
    assert covered == set(available_policies())


def test_cyclic_policies_stay_between_k0_and_k1():
    for policy in available_policies():
        if policy in {"FIX", "STEP", "NSTEP", "EXP", "INV", "POLY", "SIG", "COMPOSITE"}:
            continue
        params = {**SHIFTED, "gamma": 0.99} if policy.endswith("EXP") else SHIFTED
        values = [lr_at(policy, t, **params) for t in range(100)]
        assert min(values) >= 0.1 - 1e-12 and max(values) <= 1.1 + 1e-12, policy


def test_nstep_is_a_pure_function_of_t():
    params = {"k0": 1.0, "gamma": 0.1, "l": [100, 150]}
    ts = [160, 0, 120, 99, 150, 100, 5, 149, 1000]
    forward = {t: lr_at("NSTEP", t, **params) for t in sorted(ts)}
    fn = schedule("NSTEP", **params)
    assert [fn(t) for t in ts] == [forward[t] for t in ts]
    assert [fn(t) for t in reversed(ts)] == [forward[t] for t in reversed(ts)]


def test_composite_switches_and_restarts_the_segment_clock():
    segments = [(0, "TRI", CYC), (20, "COS", CYC), (40, "FIX", {"k0": 0.01})]
    comp = Composite(segments)
    assert comp(5) == pytest.approx(0.5)
    assert comp(19) == pytest.approx(0.1)
    assert comp(20) == pytest.approx(1.0)  # COS at its own t = 0
    assert comp(25) == pytest.approx(0.5)
    assert comp(40) == 0.01
    assert lr_at("COMPOSITE", 25, segments=segments) == comp(25)


def test_composite_nests():
    inner = (0, "COMPOSITE", {"segments": [(0, "FIX", {"k0": 1.0}), (5, "FIX", {"k0": 2.0})]})
    comp = Composite([inner, (10, "EXP", {"k0": 1.0, "gamma": 0.5})])
    assert [comp(t) for t in (0, 5, 10, 12)] == [1.0, 2.0, 1.0, 0.25]


@pytest.mark.parametrize(
    "policy,params",
    [
        ("NOPE", {"k0": 1.0}),
        ("TRI", {"k0": 0.0, "k1": 1.0}),
        ("FIX", {"k0": 1.0, "gamma": 0.5}),
        ("STEP", {"k0": 1.0, "gamma": 0.5, "l": 0}),
        ("EXP", {"k0": "big", "gamma": 0.5}),
        ("NSTEP", {"k0": 1.0, "gamma": 0.1, "l": [150, 100]}),
        ("NSTEP", {"k0": 1.0, "gamma": 0.1, "l": 100}),
        ("COMPOSITE", {"segments": [(5, "FIX", {"k0": 1.0})]}),
        ("COMPOSITE", {"segments": [(0, "FIX", {"k0": 1.0}), (0, "FIX", {"k0": 2.0})]}),
        ("COMPOSITE", {"segments": [(0, "FIX")]}),
        ("COMPOSITE", {"segments": [], "k0": 1.0}),
    ],
)
def test_bad_policy_or_parameters_raise_config_error(policy, params):
    with pytest.raises(ConfigError) as info:
        lr_at(policy, 0, **params)
    assert "\n" not in str(info.value)


def _sgd_two_groups():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    return torch.optim.SGD([{"params": [a]}, {"params": [b], "lr_scale": 0.1}], lr=123.0)


def test_scheduler_sets_every_group_and_scales():
    opt = _sgd_two_groups()
    sch = LRBenchScheduler(opt, "STEP", k0=1.0, gamma=0.5, l=2)
    seen = []
    for _ in range(5):
        seen.append(sch.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == seen[-1]
        opt.step()
        sch.step()
    assert seen == [[1.0, 0.1], [1.0, 0.1], [0.5, 0.05], [0.5, 0.05], [0.25, 0.025]]


def test_scheduler_state_dict_round_trip_continues_identically():
    segments = [(0, "TRI2", CYC), (30, "NSTEP", {"k0": 0.5, "gamma": 0.5, "l": [5, 8]})]
    opt = _sgd_two_groups()
    sch = LRBenchScheduler(opt, "COMPOSITE", segments=segments)
    for _ in range(17):
        opt.step()
        sch.step()
    buf = io.BytesIO()
    torch.save(sch.state_dict(), buf)
    buf.seek(0)

    opt2 = _sgd_two_groups()
    sch2 = LRBenchScheduler(opt2, "FIX", k0=9.0)
    sch2.load_state_dict(torch.load(buf, weights_only=False))
    for _ in range(25):
        opt.step()
        sch.step()
        opt2.step()
        sch2.step()
        assert sch2.get_last_lr() == sch.get_last_lr()
        assert [g["lr"] for g in opt2.param_groups] == sch.get_last_lr()
