"""The statistics every comparison of schedules uses: paired tests over seeds with 95% intervals, and AlgoPerf's
performance profiles (Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms").

- :func:`paired`: the mean of the per-seed differences ``a - b``, its 95% t-interval and the two-sided paired
  t-test's p-value (scipy's ``ttest_rel``); ``n`` pairs, an interval and p only from 2 pairs on.
- :func:`performance_profiles`: for each algorithm ``s`` and workload ``w`` with time ``t[s][w]`` to the target
  (``inf``: never reached), the ratio ``r = t[s][w] / min_s' t[s'][w]``; ``rho_s(tau)`` is the fraction of
  workloads with ``r <= tau``. :func:`benchmark_score` is the area under ``rho_s`` from 1 to ``tau_max``,
  normalised by ``tau_max - 1``: 1 for an algorithm that is the fastest on every workload, 0 for one that reaches
  no target within ``tau_max`` times the fastest.
- :func:`compare`: :func:`paired` and :func:`verdict` of two schedules' final metrics, each run that *failed*
  (ended worse than chance, the metric of a model that learned nothing, or not finite) counted at chance. A
  diverged run is as useless as one that learned nothing, and no worse: without the clip one perplexity of 1e18
  among three seeds makes the variance, and so the t-test, call a schedule that always diverges a tie.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["at_chance", "benchmark_score", "compare", "failed", "paired", "performance_profiles", "verdict"]


def paired(a: Sequence[float], b: Sequence[float]) -> dict:
    """Paired comparison of ``a`` and ``b`` (one value per seed, same order): ``{"n", "mean_diff", "ci_low",
    "ci_high", "p"}`` (NaN where it cannot be computed: fewer than 2 pairs, or identical pairs for p)."""
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"paired needs one value of each per seed, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    out = {"n": n, "mean_diff": statistics.fmean(diffs) if n else math.nan, "ci_low": math.nan,
           "ci_high": math.nan, "p": math.nan}
    if n >= 2:
        sd = statistics.stdev(diffs)
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        out["ci_low"], out["ci_high"] = out["mean_diff"] - half, out["mean_diff"] + half
        if sd > 0:
            out["p"] = float(stats.ttest_rel(a, b).pvalue)
        elif out["mean_diff"] == 0:
            out["p"] = 1.0
        else:
            out["p"] = 0.0  # every seed differs by the same amount
    return out


def verdict(comparison: dict, higher_is_better: bool, alpha: float = 0.05) -> str:
    """``win``, ``loss`` or ``tie`` for ``a`` against ``b`` (:func:`paired`): a win or a loss when the paired
    test's p is below ``alpha`` (so the 95% interval excludes 0), in the direction of the mean difference."""
    p, d = comparison["p"], comparison["mean_diff"]
    if math.isnan(p) or p >= alpha or d == 0:
        return "tie"
    better = d > 0 if higher_is_better else d < 0
    return "win" if better else "loss"


def failed(value: float | None, chance: float | None, higher_is_better: bool) -> bool:
    """Whether a run's final metric is missing, not finite, or worse than ``chance`` (None: no chance level, so
    only a missing or non-finite metric fails)."""
    if value is None or not math.isfinite(value):
        return True
    if chance is None:
        return False
    return value < chance if higher_is_better else value > chance


def at_chance(values: Sequence[float | None], chance: float | None, higher_is_better: bool) -> list[float]:
    """``values`` with each failed run (:func:`failed`) at ``chance`` (at NaN where there is no chance level)."""
    return [(math.nan if chance is None else chance) if failed(v, chance, higher_is_better) else float(v)
            for v in values]


def compare(a: Sequence[float | None], b: Sequence[float | None], higher_is_better: bool,
            chance: float | None = None, alpha: float = 0.05) -> dict:
    """:func:`paired` of ``a`` and ``b`` (per seed, same order) after :func:`at_chance`, with ``verdict`` for
    ``a`` and the failed runs of each (``failed_a``, ``failed_b``)."""
    out = paired(at_chance(a, chance, higher_is_better), at_chance(b, chance, higher_is_better))
    out["verdict"] = verdict(out, higher_is_better, alpha)
    out["failed_a"] = sum(failed(v, chance, higher_is_better) for v in a)
    out["failed_b"] = sum(failed(v, chance, higher_is_better) for v in b)
    return out


def performance_profiles(times: Mapping[str, Mapping[str, float]], taus: Sequence[float]) -> dict[str, list[float]]:
    """``rho_s(tau)`` at every ``tau`` of ``taus`` for every algorithm ``s`` of ``times[s][workload]`` (seconds or
    steps to the target; ``inf`` when not reached). A workload no algorithm reaches counts against all."""
    algorithms = list(times)
    workloads = sorted({w for s in algorithms for w in times[s]})
    if not workloads:
        return {s: [0.0] * len(taus) for s in algorithms}
    best = {w: min(times[s].get(w, math.inf) for s in algorithms) for w in workloads}
    out = {}
    for s in algorithms:
        ratios = np.array([times[s].get(w, math.inf) / best[w] if math.isfinite(best[w]) and best[w] > 0
                           else (1.0 if best[w] == 0 and times[s].get(w, math.inf) == 0 else math.inf)
                           for w in workloads])
        out[s] = [float(np.mean(ratios <= tau)) for tau in taus]
    return out


def benchmark_score(rho: Sequence[float], taus: Sequence[float]) -> float:
    """The area under a profile from ``taus[0]`` (1) to ``taus[-1]`` (``tau_max``), normalised to [0, 1]."""
    t = np.asarray(taus, dtype=float)
    r = np.asarray(rho, dtype=float)
    if len(t) < 2 or t[-1] <= t[0]:
        raise ValueError("benchmark_score needs at least two increasing taus")
    return float(np.sum((t[1:] - t[:-1]) * r[:-1]) / (t[-1] - t[0]))  # a step function, right-continuous
