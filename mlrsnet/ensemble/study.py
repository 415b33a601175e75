r"""LREnsemble end to end (Jin & Wu, "Boosting Deep Ensembles with Learning Rate Tuning", 2024): for each
seed, a pool of base models from LR-policy tuning (:mod:`mlrsnet.ensemble.pool`), teams chosen on the meta
split (:mod:`mlrsnet.ensemble.selection`), and their test accuracy against the best single base model.

The test split is read only after every choice is made: the best single model is the one with the highest
meta-split accuracy (ties: the lower meta cross-entropy), and each (method, combiner) team is chosen from
the meta-split probabilities alone.

Outputs in ``out_dir``: ``results.csv`` (one row per seed and per best single / method x combiner),
``results.md`` (mean ± std over seeds, then each seed's teams), ``pool.csv`` (every base model's meta and
test accuracy), ``diversity.png`` (team accuracy against focal diversity, first seed), ``config.yaml``,
``environment.json`` and ``members/seed<k>/<model>/`` (each base model's ``probs.npz`` and ``member.json``).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlrsnet.engine.config import EnsembleConfig, parse_config
from mlrsnet.engine.figures import plot_team_diversity
from mlrsnet.engine.fingerprint import config_dict
from mlrsnet.engine.log import csv_text, dump_config, environment
from mlrsnet.engine.resume import StopSignals
from mlrsnet.ensemble.diversity import check_metrics
from mlrsnet.ensemble.pool import Pool, bench_pool, pool_entries, train_pool
from mlrsnet.ensemble.selection import (
    COMBINERS,
    METHODS,
    Selection,
    count_teams,
    ensemble_accuracy,
    enumerate_teams,
    select,
    team_focal_diversity,
    team_scores,
)
from mlrsnet.errors import ConfigError
from mlrsnet.io import atomic_write_json, atomic_write_text

__all__ = ["ROW_COLUMNS", "best_single", "ensemble_rows", "lrensemble", "validate_ensemble"]

ROW_COLUMNS = ("seed", "method", "combiner", "team", "size", "policies", "meta_accuracy", "test_accuracy",
               "gain")


def validate_ensemble(cfg: Any) -> EnsembleConfig:
    """The typed config of ``python -m mlrsnet.ensemble`` (:func:`mlrsnet.engine.config.parse_config`) and
    LREnsemble's own checks: the methods, combiners, diversity metrics and pool."""
    typed = parse_config(cfg, "ensemble")
    assert isinstance(typed, EnsembleConfig)
    if not typed.seeds:
        raise ConfigError(f"seeds must be a non-empty list of integers, e.g. seeds=[0,1,2]; got {typed.seeds}")
    for key, allowed in (("methods", METHODS), ("combiners", COMBINERS)):
        values = getattr(typed, key)
        if not values or any(v not in allowed for v in values):
            raise ConfigError(f"{key} must be a non-empty list of {', '.join(allowed)}; got {values}")
    check_metrics(typed.focal["metrics"])
    if typed.from_bench is None:
        pool_entries(typed.pool)
    return typed


def best_single(pool: Pool) -> int:
    """Index of the base model with the highest meta-split accuracy (ties: lower meta cross-entropy)."""
    acc = (pool.meta_probs.argmax(-1) == pool.meta_labels[None]).mean(1)
    picked = pool.meta_probs[:, np.arange(pool.meta_labels.size), pool.meta_labels]
    nll = -np.log(np.clip(picked, 1e-12, None)).mean(1)
    return int(np.lexsort((np.arange(len(acc)), nll, -acc))[0])


def _team_text(pool: Pool, members: Sequence[int]) -> str:
    counts = Counter(members)
    if len(counts) == len(pool.names) > 4 and set(counts.values()) == {1}:
        return f"all {len(pool.names)} models"
    return " + ".join(f"{pool.names[m]}" + (f"×{k}" if k > 1 else "") for m, k in sorted(counts.items()))


def _policies(pool: Pool, members: Sequence[int]) -> str:
    return ", ".join(dict.fromkeys(pool.policies[m] for m in sorted(set(members))))


def ensemble_rows(pool: Pool, cfg: EnsembleConfig, seed: int) -> tuple[list[dict], dict[tuple[str, str], Selection]]:
    """The best single base model and every (method, combiner) team of one seed's pool, as result rows
    (with test accuracy, read only here, after the choices), and the selections."""
    single = best_single(pool)
    single_test = float(np.mean(pool.test_probs[single].argmax(-1) == pool.test_labels))
    rows = [{"seed": seed, "method": "best single", "combiner": "—", "team": pool.names[single], "size": 1,
             "policies": pool.policies[single],
             "meta_accuracy": float(np.mean(pool.meta_probs[single].argmax(-1) == pool.meta_labels)),
             "test_accuracy": single_test, "gain": 0.0}]
    selections: dict[tuple[str, str], Selection] = {}
    n_models = len(pool.names)
    for method in cfg.methods:
        if n_models < 2 and method != "all":
            continue
        if method in ("brute", "focal") and count_teams(n_models, cfg.max_team_size) > cfg.max_teams:
            print(f"[seed {seed}] {method}: skipped, more than max_teams={cfg.max_teams} teams", flush=True)
            continue
        for combiner in cfg.combiners:
            sel = select(pool.meta_probs, pool.meta_labels, method, combiner,
                         max_size=cfg.max_team_size, max_teams=cfg.max_teams,
                         bag_size=int(cfg.greedy["bag_size"]), init_k=int(cfg.greedy["init_k"]),
                         metrics=cfg.focal["metrics"])
            selections[(method, combiner)] = sel
            test = ensemble_accuracy(pool.test_probs, pool.test_labels, sel.members, combiner)
            rows.append({"seed": seed, "method": method, "combiner": combiner,
                         "team": _team_text(pool, sel.members), "size": len(sel.members),
                         "policies": _policies(pool, sel.members), "meta_accuracy": sel.accuracy,
                         "test_accuracy": test, "gain": test - single_test})
    return rows, selections


def _fmt(values: Sequence[float], digits: int = 4, signed: bool = False) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:+.{digits}f} ± {std:.{digits}f}" if signed else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_table(rows: list[dict], seeds: list[int]) -> str:
    """Markdown: mean ± std over seeds of each row kind's meta and test accuracy and test gain."""
    lines = [f"Mean ± std over seeds {seeds}. Gain: test accuracy minus the best single base model's (chosen on "
             "the meta split) of the same seed, in accuracy points × 100.", "",
             "| method | combiner | team size | meta accuracy | test accuracy | gain (points) | seeds with gain > 0 |",
             "|---|---|---|---|---|---|---|"]
    for key in dict.fromkeys((r["method"], r["combiner"]) for r in rows):
        mine = [r for r in rows if (r["method"], r["combiner"]) == key]
        gains = [100 * r["gain"] for r in mine]
        better = sum(g > 1e-9 for g in gains)
        lines.append(f"| {key[0]} | {key[1]} | {_fmt([r['size'] for r in mine], 1)} | "
                     f"{_fmt([r['meta_accuracy'] for r in mine])} | {_fmt([r['test_accuracy'] for r in mine])} | "
                     f"{_fmt(gains, 2, signed=True)} | {better}/{len(mine)} |")
    return "\n".join(lines) + "\n"


def seed_table(rows: list[dict]) -> str:
    """Markdown: every row of one seed (the team and its members' LR policies)."""
    lines = ["| method | combiner | team | LR policies | meta accuracy | test accuracy | gain (points) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['combiner']} | {r['team']} | {r['policies']} | {r['meta_accuracy']:.4f} | "
                     f"{r['test_accuracy']:.4f} | {100 * r['gain']:+.2f} |")
    return "\n".join(lines) + "\n"


def _diversity_points(pool: Pool, selections: dict[tuple[str, str], Selection], cfg: dict,
                      combiner: str) -> dict[str, Any]:
    """Every candidate team's (meta accuracy, focal diversity) and test accuracy, for the figure; the
    selected teams of ``combiner`` marked."""
    focal = selections.get(("focal", combiner))
    metrics = cfg.focal["metrics"]
    if focal is not None:
        teams, acc, div, kept = (focal.candidates[k] for k in ("teams", "accuracy", "diversity", "kept"))
    else:
        teams = enumerate_teams(len(pool.names), cfg.max_team_size, cfg.max_teams)
        acc = team_scores(pool.meta_probs, pool.meta_labels, teams, combiner)[0]
        div = team_focal_diversity(pool.meta_probs, pool.meta_labels, teams, metrics)
        kept = np.zeros(len(teams), dtype=bool)
    index = {t: i for i, t in enumerate(teams)}
    test = np.array([ensemble_accuracy(pool.test_probs, pool.test_labels, t, combiner) for t in teams])
    marked = {}
    for (method, comb), sel in selections.items():
        team = tuple(sorted(set(sel.members)))
        # A team with a repeated member (greedy) is weighted: it is none of the equal-weight candidates.
        if comb == combiner and team in index and len(team) == len(sel.members):
            marked[method] = index[team]
    single = best_single(pool)
    accuracy = {split: float(np.mean(getattr(pool, f"{split}_probs")[single].argmax(-1) ==
                                     getattr(pool, f"{split}_labels"))) for split in ("meta", "test")}
    return {"accuracy": acc, "test_accuracy": test, "diversity": div, "kept": kept, "marked": marked,
            "single": accuracy}


def lrensemble(cfg: Any, out_dir: str | Path) -> dict:
    """Run LREnsemble for every seed of ``cfg.seeds`` (the composed conf/ensemble.yaml + task); write the
    outputs of the module docstring to ``out_dir`` and return ``{"rows", "table", "files"}``."""
    cfg = validate_ensemble(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.yaml", dump_config(config_dict(cfg)))
    atomic_write_json(out_dir / "environment.json", environment())
    seeds = list(cfg.seeds)
    rows: list[dict] = []
    pool_rows: list[dict] = []
    figure_data = None
    with StopSignals() as stop:
        pools = {seed: bench_pool(cfg.from_bench, seed, cfg.task.name) if cfg.from_bench
                 else train_pool(cfg, pool_entries(cfg.pool), seed, out_dir, stop) for seed in seeds}
    for seed, pool in pools.items():
        seed_rows, selections = ensemble_rows(pool, cfg, seed)
        rows += seed_rows
        pool_rows += [{"seed": seed, "model": n, "policy": p, "meta_accuracy": r["meta_accuracy"],
                       "test_accuracy": r["test_accuracy"], "wall_time_s": r.get("wall_time_s")}
                      for n, p, r in zip(pool.names, pool.policies, pool.records, strict=True)]
        if figure_data is None and len(pool.names) >= 2 and count_teams(
                len(pool.names), cfg.max_team_size) <= cfg.max_teams:
            combiner = cfg.combiners[0]
            figure_data = (seed, combiner, _diversity_points(pool, selections, cfg, combiner))
    task_name = cfg.task.name
    files = {"results.csv": out_dir / "results.csv", "results.md": out_dir / "results.md",
             "pool.csv": out_dir / "pool.csv"}
    atomic_write_text(files["results.csv"], csv_text(rows, ROW_COLUMNS))
    atomic_write_text(files["pool.csv"], csv_text(pool_rows, ("seed", "model", "policy", "meta_accuracy",
                                                          "test_accuracy", "wall_time_s")))
    table = summary_table(rows, seeds)
    source = f"the bench in {cfg.from_bench}" if cfg.from_bench else "LR-policy pool"
    parts = [f"# {task_name}: LREnsemble ({source}, {cfg.epochs} epochs)\n", table]
    for seed in seeds:
        parts += [f"\n## Seed {seed}\n", seed_table([r for r in rows if r["seed"] == seed])]
    atomic_write_text(files["results.md"], "\n".join(parts))
    if figure_data is not None:
        seed, combiner, points = figure_data
        noise_cfg = getattr(cfg.task, "noise", None)
        noise = "" if noise_cfg is None or noise_cfg.kind == "none" else \
            f" ({noise_cfg.kind} label noise {noise_cfg.rate:g})"
        files["diversity.png"] = plot_team_diversity(
            points, out_dir / "diversity.png",
            f"{task_name}{noise}, seed {seed}: teams of 2..{cfg.max_team_size} ({combiner} combiner)")
    return {"rows": rows, "table": table, "files": files}
