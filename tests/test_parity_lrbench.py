"""LRBench policies against the authors' ``LRfunctions.py`` (git-disl/LRBench): the expected values
are the reference's, as stated in issue 13."""

import math

import pytest

from mlrsnet.schedules.lrbench import Composite, lr_at

P = {"k0": 0.01, "k1": 0.1, "l": 50}


@pytest.mark.parametrize("policy", ["RSW", "SINRSW", "COSRSW", "RSW2", "SINRSW2", "COSRSW2",
                                    "RSWEXP", "SINRSWEXP", "COSRSWEXP"])
@pytest.mark.parametrize("t", [0, 50, 100, 350])
def test_restart_family_is_at_k0_at_multiples_of_l(policy, t):
    params = {**P, "gamma": 0.999} if policy.endswith("EXP") else P
    assert lr_at(policy, t, **params) == pytest.approx(0.01, abs=1e-15)


def test_rsw_reference_example_and_one_step_after_the_restart():
    assert lr_at("RSW", 0, **P) == pytest.approx(0.01)
    assert lr_at("RSW", 50, **P) == pytest.approx(0.01)
    # One iteration after the restart the reference's phase is 1 - 1/50.
    assert lr_at("RSW", 51, **P) == pytest.approx(0.01 + 0.09 * 49 / 50)


def test_cos2_halves_by_the_shifted_clock():
    assert lr_at("COS2", 51, **P) == pytest.approx(0.0100444, abs=1e-7)
    # floor((t + l) / 2l) turns over at t = 50 (the trough), not at t = 100 (the peak).
    assert lr_at("COS2", 100, **P) == pytest.approx(0.01 + 0.09 / 2)


def test_dtri2_and_dsin2_halve_by_the_shifted_clock():
    # TRID = LRBench's DTRI, SIND = its DSIN; at t = 51 both have halved once in the reference.
    tri = 2 / math.pi * abs(math.asin(math.sin(math.pi * 101 / 100)))
    assert lr_at("TRID2", 51, **P) == pytest.approx(0.01 + 0.09 * tri / 2)
    assert lr_at("TRID2", 51, **P) == pytest.approx(0.0109)
    sin = abs(math.sin(math.pi * 101 / 100))
    assert lr_at("SIND2", 51, **P) == pytest.approx(0.01 + 0.09 * sin / 2)


def test_tri2_sin2_upcos2_keep_the_unshifted_clock():
    # In the reference only COS2, DTRI2 and DSIN2 shift the halving clock.
    assert lr_at("TRI2", 51, **P) == pytest.approx(0.01 + 0.09 * 2 / math.pi * math.asin(math.sin(math.pi * 51 / 100)))
    assert lr_at("UPCOS2", 51, **P) == pytest.approx(0.01 + 0.09 * 0.5 * (1 - math.cos(math.pi * 51 / 50)))


def test_composites_inherit_the_reference_behaviour():
    comp = Composite([(0, "FIX", {"k0": 0.1}), (10, "RSW", P), (200, "COS2", P)])
    assert comp(10) == pytest.approx(0.01)  # RSW at its own t = 0
    assert comp(60) == pytest.approx(0.01)
    assert comp(251) == pytest.approx(0.0100444, abs=1e-7)


def test_documented_deviations_poly_and_sig():
    # POLY past t = l: clamped at k0 (the reference rises again, or is complex for fractional p).
    assert lr_at("POLY", 150, k0=0.01, k1=0.1, p=0.5, l=100) == 0.01
    assert lr_at("POLY", 300, k0=0.01, k1=0.1, p=2, l=100) == 0.01
    # SIG far below its centre: 0.0 where the reference's exp overflows.
    assert lr_at("SIG", 0, k0=0.1, gamma=1.0, l=10**6) == 0.0
