"""FastSpiker's LR-policy selection (Bano, Putra, Marchisio & Shafique), as a documented interpretation.

FastSpiker sweeps LR policies, keeps those that reach high accuracy, and settles on the one that gets
there fastest when a statistical decision says the difference is real. The paper does not publish the
exact rule; :func:`select_fastest` implements this reading of it over benchmark runs (one per policy
and seed, all seeds shared by all policies), using the meta-validation split only:

1. **Accurate enough.** Each policy's final meta-split metric, averaged over seeds. Keep the policies
   within ``tolerance`` of the best one.
2. **Fastest.** Among the kept ones, the *candidate* is the one with the smallest mean time to reach
   ``target`` on the meta split (``unit="epochs"``, the default, is deterministic for a seed;
   ``"seconds"`` is wall time, which on a shared machine is noisy). A run that never reaches the target
   counts as ``epochs + 1`` epochs (or its whole wall time plus one mean epoch): a censored value, so
   that the test can still pair it.
3. **Significant, or simpler.** The candidate is compared with the simplest kept policy (``simplicity``:
   an order from simple to complex) by a one-sided paired test across seeds: ``ttest`` (scipy's
   ``ttest_rel``, the default) or ``wilcoxon`` (signed-rank; note that with 3 seeds its smallest possible
   one-sided p-value is 0.125, so it can never reject at 0.05). If ``p < alpha`` the candidate is chosen,
   otherwise the simpler policy; if the candidate is itself the simplest, it is chosen without a test.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.registry import simplicity_order

__all__ = ["select_fastest", "time_to_target"]

def time_to_target(history: Sequence[dict], key: str, target: float, higher: bool, unit: str = "epochs") -> float:
    """Epochs (or seconds) until ``history[key]`` first reached ``target``; censored at ``epochs + 1``
    (or the run's seconds plus one mean epoch) when it never did."""
    seconds = 0.0
    for h in history:
        seconds += h["epoch_time"]
        if (h[key] >= target) if higher else (h[key] <= target):
            return float(h["epoch"]) if unit == "epochs" else seconds
    if unit == "epochs":
        return float(len(history) + 1)
    return seconds + seconds / max(1, len(history))


def _rank(name: str, simplicity: Sequence[str]) -> tuple[int, str]:
    return (simplicity.index(name) if name in simplicity else len(simplicity), name)


def _paired_p(faster: list[float], slower: list[float], test: str) -> float:
    """One-sided p-value that ``faster`` is smaller than ``slower``, paired by seed (1.0 when they are
    identical)."""
    from scipy import stats

    if all(a == b for a, b in zip(faster, slower, strict=True)):
        return 1.0
    if test == "wilcoxon":
        return float(stats.wilcoxon(faster, slower, alternative="less").pvalue)
    p = float(stats.ttest_rel(faster, slower, alternative="less").pvalue)
    return 1.0 if math.isnan(p) else p


def select_fastest(
    records: list[dict], *, target: float, tolerance: float = 0.01, alpha: float = 0.05, test: str = "ttest",
    unit: str = "epochs", simplicity: Sequence[str] | None = None,
) -> dict[str, Any]:
    """FastSpiker's selection (the module docstring) over bench run records (``schedule``, ``seed``,
    ``status``, ``metric``, ``higher_is_better``, ``history`` with ``meta_<metric>`` and ``epoch_time``).
    Only complete runs count, and only seeds that every policy completed. ``simplicity`` orders the policies
    from simple to complex (default: the schedules' declared ranks,
    :func:`mlrsnet.schedules.registry.simplicity_order`). Returns ``chosen``, ``candidate``, ``simplest``,
    ``p_value`` (None without a test), ``test``, ``seeds`` and per policy the mean final meta metric, mean time to
    target and whether it was kept."""
    if simplicity is None:
        simplicity = simplicity_order()
    if test not in ("ttest", "wilcoxon"):
        raise ConfigError(f"select test must be ttest or wilcoxon, got {test!r}")
    if unit not in ("epochs", "seconds"):
        raise ConfigError(f"select unit must be epochs or seconds, got {unit!r}")
    done = [r for r in records if r["status"] == "complete" and r["history"]]
    if not done:
        raise ConfigError("no complete runs to select from; run the bench first")
    policies = sorted({r["schedule"] for r in done}, key=lambda n: _rank(n, simplicity))
    seeds = sorted(set.intersection(*({r["seed"] for r in done if r["schedule"] == p} for p in policies)))
    if not seeds:
        raise ConfigError("no seed was completed by every policy; selection pairs runs by seed")
    metric, higher = done[0]["metric"], bool(done[0]["higher_is_better"])
    key = f"meta_{metric}"
    by = {(r["schedule"], r["seed"]): r for r in done}
    finals = {p: [by[p, s]["history"][-1][key] for s in seeds] for p in policies}
    times = {p: [time_to_target(by[p, s]["history"], key, target, higher, unit) for s in seeds] for p in policies}
    mean_final = {p: statistics.fmean(v) for p, v in finals.items()}
    best = (max if higher else min)(mean_final.values())
    kept = [p for p in policies if (mean_final[p] >= best - tolerance if higher else mean_final[p] <= best + tolerance)]
    mean_time = {p: statistics.fmean(v) for p, v in times.items()}
    candidate = min(kept, key=lambda p: (mean_time[p], _rank(p, simplicity)))
    simplest = kept[0]
    p_value = None if candidate == simplest else _paired_p(times[candidate], times[simplest], test)
    chosen = candidate if p_value is None or p_value < alpha else simplest
    return {
        "chosen": chosen, "candidate": candidate, "simplest": simplest, "p_value": p_value, "test": test,
        "alpha": alpha, "target": target, "tolerance": tolerance, "unit": unit, "metric": key, "seeds": seeds,
        "policies": {p: {"final_meta": mean_final[p], "time_to_target": mean_time[p], "kept": p in kept,
                         "times": times[p]} for p in policies},
    }


def selection_table(sel: dict[str, Any]) -> str:
    """Markdown: every policy's mean final meta metric and time to target, the kept ones, the choice."""
    unit = sel["unit"]
    lines = [
        "", f"## Selection (FastSpiker, interpretation): `select=fastest` on the meta split, seeds {sel['seeds']}",
        "",
        f"Kept: final {sel['metric']} within {sel['tolerance']:g} of the best. Time to {sel['metric']} >= "
        f"{sel['target']:g} in {unit} (never reached: censored). Candidate = the fastest kept policy; it is "
        f"chosen over the simplest kept policy only if a one-sided paired {sel['test']} across seeds gives "
        f"p < {sel['alpha']:g}.", "",
        f"| policy | final {sel['metric']} | {unit} to target | kept |", "|---|---|---|---|",
    ]
    for name, row in sel["policies"].items():
        mark = " **(chosen)**" if name == sel["chosen"] else ""
        lines.append(f"| {name}{mark} | {row['final_meta']:.4f} | {row['time_to_target']:.2f} | "
                     f"{'yes' if row['kept'] else 'no'} |")
    p = "no test (the candidate is the simplest kept policy)" if sel["p_value"] is None else f"p = {sel['p_value']:.4g}"
    lines += ["", f"Candidate **{sel['candidate']}** vs simplest **{sel['simplest']}**: {p}; chosen: "
              f"**{sel['chosen']}**."]
    return "\n".join(lines) + "\n"
