"""mlrsnet.engine.stats: paired tests with intervals against scipy by hand, and performance profiles and the
benchmark score on cases worked out by hand."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from mlrsnet.engine.stats import at_chance, benchmark_score, compare, failed, paired, performance_profiles, verdict
from mlrsnet.tasks.base import TaskInfo


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


def test_a_run_worse_than_chance_fails_and_counts_at_chance():
    assert TaskInfo("t", 10).chance == pytest.approx(0.1)  # accuracy: uniform guessing
    assert TaskInfo("lm", 256, metric="perplexity", higher_is_better=False).chance == 256.0  # uniform prediction
    assert TaskInfo("nmf", 1, metric="rel_error", higher_is_better=False).chance == 1.0  # the zero reconstruction
    assert TaskInfo("x", 1, metric="bleu").chance is None
    assert failed(300.0, 256.0, False) and not failed(255.0, 256.0, False)
    assert failed(0.05, 0.1, True) and not failed(0.1, 0.1, True)
    assert failed(math.nan, None, True) and failed(None, 0.1, True) and failed(math.inf, None, False)
    assert not failed(1e30, None, False)  # no chance level: only a non-finite metric fails
    assert at_chance([8.3, 1e18, math.nan], 256.0, False) == [8.3, 256.0, 256.0]
    # a schedule that diverges on every seed: raw, the variance of its divergence makes the t-test call a tie
    diverged, fine = [2.3e16, 9.0e7, 1.0e18], [8.3, 8.2, 8.4]
    assert verdict(paired(diverged, fine), higher_is_better=False) == "tie"
    out = compare(diverged, fine, higher_is_better=False, chance=256.0)
    assert out["verdict"] == "loss" and (out["failed_a"], out["failed_b"]) == (3, 0)
    assert out["mean_diff"] == pytest.approx(256.0 - 8.3) and out["p"] == pytest.approx(
        stats.ttest_rel([256.0] * 3, fine).pvalue)
    # two runs that both learned something compare as paired does
    a, b = [0.91, 0.93, 0.90, 0.95], [0.89, 0.92, 0.90, 0.91]
    assert {k: v for k, v in compare(a, b, True, 0.1).items() if k in paired(a, b)} == paired(a, b)
