"""mlrsnet.engine.stats: paired tests with intervals against scipy by hand, and performance profiles and the
benchmark score on cases worked out by hand."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from mlrsnet.engine.stats import benchmark_score, paired, performance_profiles, verdict


def test_paired_matches_the_t_distribution_by_hand():
    a, b = [0.91, 0.93, 0.90, 0.95], [0.89, 0.92, 0.90, 0.91]
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(d) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)
    half = stats.t.ppf(0.975, 3) * sd / 2
    out = paired(a, b)
    assert out["n"] == 4 and out["mean_diff"] == pytest.approx(mean)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((mean - half, mean + half))
    assert out["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert verdict(out, higher_is_better=True) == "tie"  # p ~ 0.1
    assert verdict(paired([1.0, 2.0, 3.0], [0.0, 1.1, 1.9]), higher_is_better=False) == "loss"  # lower is better
    one = paired([1.0], [0.5])
    assert one["mean_diff"] == 0.5 and math.isnan(one["p"]) and verdict(one, True) == "tie"
    with pytest.raises(ValueError):
        paired([1.0, 2.0], [1.0])


def test_profiles_and_score_by_hand():
    times = {"a": {"w1": 10.0, "w2": 20.0}, "b": {"w1": 20.0, "w2": 10.0}, "c": {"w1": math.inf, "w2": 15.0}}
    taus = [1.0, 1.5, 2.0, 3.0]
    rho = performance_profiles(times, taus)
    assert rho["a"] == [0.5, 0.5, 1.0, 1.0] and rho["b"] == [0.5, 0.5, 1.0, 1.0]
    assert rho["c"] == [0.0, 0.5, 0.5, 0.5]  # never reaches w1's target
    # area of a step function: a is 0.5 on [1, 2), then 1 on [2, 3]: (0.5 * 1 + 1 * 1) / 2
    assert benchmark_score(rho["a"], taus) == pytest.approx(0.75)
    assert benchmark_score([1.0] * 4, taus) == 1.0 and benchmark_score([0.0] * 4, taus) == 0.0
    with pytest.raises(ValueError):
        benchmark_score([1.0], [1.0])
