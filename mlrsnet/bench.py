"""Benchmark LR schedules on one task, with the same seeds, data order, initialisation and tuning budget.

Command line (Hydra)::

    python -m mlrsnet.bench +task=digits_cnn schedules=[fixed,step,cosine,greedy,mlrsnet] seeds=[0,1,2]

Python::

    from mlrsnet.bench import bench
    results = bench(cfg, out_dir="runs/my_bench")   # cfg: the composed conf/bench.yaml + task

Protocol, for every schedule of ``schedules`` (any ``schedule=`` name, :mod:`mlrsnet.schedules.drivers`;
MLR-SNet takes part as ``mlrsnet``, meta-trained in place, and ``mlrsnet_frozen``, a bundle), each under
its own defaults (``conf/schedule/<name>.yaml``: its parameters and its optimiser, SGD momentum 0 under
MLR-SNet and 0.9 for the SGDM baselines; ``schedule_params.<name>.<key>=value`` overrides them); the
tables name the optimiser each schedule ran with:

1. Tuning (``tune=true``): for every multiplier ``m`` of ``lr_grid``, a run with seed ``tune_seed`` trains
   ``tune_epochs`` epochs (null: ``epochs``) with ``m`` times the schedule's base LR (the base optimiser's
   LR, a replacement optimiser's LR, or MLR-SNet's gamma; see :mod:`mlrsnet.schedules.drivers`). It is
   scored by the meta-validation metric at its end; the test split is never evaluated. The best ``m``
   wins (ties: the one closest to 1; a diverged run scores worst). ``tune=false``: ``m = 1``.
2. For every seed of ``seeds``: the task (split, label noise, data order) and the model (initialisation)
   are built from the seed by :func:`mlrsnet.engine.build.build_run`, as every entry point builds them, and trained for
   ``epochs`` epochs with the chosen ``m`` through :func:`mlrsnet.engine.loop.train_loop`, the test and meta
   splits evaluated after every epoch. The divergence guard of ``guard`` applies; a diverged run is
   reported as such.

Outputs in ``out_dir`` (null: Hydra's run directory):

- ``results.csv``: one row per (schedule, seed): the chosen multiplier, the peak LR, the final and best
  test metric, epochs and seconds to ``target_metric``, wall time, and LRBench's robustness and
  confidence metrics: the test-train loss gap (test loss minus the training split's loss, both in eval
  mode at the end) and the mean and std of the softmax confidence on correct test predictions;
- ``results.md``: the same, mean ± std over seeds, one row per schedule (``(k/n)`` where only ``k`` of
  ``n`` runs have a value: a run that diverged, or never reached the target);
- ``tuning.csv``: every tuning candidate's meta-validation score, and which one was chosen;
- ``lr_curves.png`` (LR against iteration, first seed) and ``metric_curves.png`` (test metric and
  training loss against epoch, mean and std over seeds);
- ``runs/<schedule>/seed<k>/`` (``metrics.jsonl`` per step and epoch, ``run.json`` and, for classification
  tasks, ``probs.npz``: the per-example probabilities on the meta and test splits after the last epoch,
  float16, for ``python -m mlrsnet.ensemble from_bench=``) and
  ``tuning/<schedule>/x<m>.json``;
- with ``select=fastest``: FastSpiker's choice of policy (:mod:`mlrsnet.engine.selection`, on the meta split
  only) in ``selection.json`` and as a section of ``results.md``.

Every run record carries a fingerprint of the configuration (without the bench's own keys). A record
with the current fingerprint is reused instead of rerun, and the tables gather every such record in
``out_dir``: Hydra multirun jobs that share an ``out_dir`` (e.g. ``-m schedules=[fixed],[cosine]
out_dir=runs/bench/x``) each train their own schedules and write the table of all that are done.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlrsnet.engine.build import build_run, to_plain, validate
from mlrsnet.engine.figures import plot_lr_curves, plot_metric_curves
from mlrsnet.engine.log import RunLogger, csv_text, read_metrics
from mlrsnet.engine.loop import Diverged, train_loop
from mlrsnet.engine.record import save_probabilities
from mlrsnet.engine.selection import select_fastest, selection_table
from mlrsnet.errors import ConfigError
from mlrsnet.io import atomic_write_json, atomic_write_text
from mlrsnet.rundir import open_run_dir
from mlrsnet.schedules.drivers import check_schedule
from mlrsnet.tasks.base import ClassificationTask

__all__ = ["BENCH_KEYS", "bench", "summarise", "train_run", "tune_lr"]

# Keys of conf/bench.yaml that choose what to run, not how a run trains: left out of the fingerprint.
BENCH_KEYS = ("schedules", "seeds", "lr_grid", "tune", "tune_epochs", "tune_seed", "target_metric", "out_dir",
              "progress", "schedule", "select", "select_params")
RESULT_COLUMNS = ("schedule", "optimizer", "seed", "status", "lr_multiplier", "peak_lr", "final_test", "best_test",
                  "epochs_to_target", "seconds_to_target", "wall_time_s", "loss_gap", "confidence_mean",
                  "confidence_std")


def fingerprint(cfg: dict) -> str:
    """A short hash of the configuration that determines how a run trains (``BENCH_KEYS`` removed)."""
    core = {k: v for k, v in cfg.items() if k not in BENCH_KEYS}
    return hashlib.sha1(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:16]


def validate_bench(cfg: dict) -> None:
    """The checks of :func:`mlrsnet.engine.build.validate`, plus the bench's own keys."""
    validate(cfg, "bench")
    schedules, seeds, grid = cfg["schedules"], cfg["seeds"], cfg["lr_grid"]
    if not isinstance(schedules, list) or not schedules:
        raise ConfigError("schedules must be a non-empty list, e.g. schedules=[fixed,cosine,mlrsnet]")
    for name in schedules:
        check_schedule(name)
    if len(set(schedules)) != len(schedules):
        raise ConfigError(f"schedules lists a name twice: {schedules}")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers, e.g. seeds=[0,1,2]; got {seeds}")
    if not isinstance(grid, list) or not grid or not all(
            isinstance(m, int | float) and not isinstance(m, bool) and m > 0 for m in grid):
        raise ConfigError(f"lr_grid must be a non-empty list of positive LR multipliers, e.g. "
                          f"lr_grid=[0.3,1,3]; got {grid}")
    if cfg["tune_epochs"] is not None and (not isinstance(cfg["tune_epochs"], int) or cfg["tune_epochs"] < 1):
        raise ConfigError(f"tune_epochs must be a positive integer or null, got {cfg['tune_epochs']!r}")
    target = cfg["target_metric"]
    if target is not None and (isinstance(target, bool) or not isinstance(target, int | float)):
        raise ConfigError(f"target_metric must be a number or null, got {target!r}")
    if cfg.get("select") not in (None, "fastest"):
        raise ConfigError(f"select must be null or fastest (FastSpiker's selection), got {cfg['select']!r}")
    if cfg.get("select") == "fastest" and (cfg.get("select_params") or {}).get("target", target) is None:
        raise ConfigError("select=fastest needs a target: set target_metric=VALUE or select_params.target=VALUE")


def train_run(cfg: dict, schedule: str, seed: int, lr_multiplier: float, *, epochs: int,
              eval_splits: tuple[str, ...], run_dir: Path | None = None, progress: bool = False) -> dict:
    """Train one (schedule, seed, LR multiplier) for ``epochs`` epochs, evaluating ``eval_splits`` after
    every epoch; return its record (``status`` complete or diverged, per-epoch ``history``, wall time and,
    when ``"test"`` is evaluated, the end-of-run ``final`` metrics). ``run_dir`` receives metrics.jsonl."""
    run = build_run({**cfg, "schedule": schedule, "seed": seed, "epochs": epochs}, lr_multiplier=lr_multiplier)
    task, train_model, optimizer, driver = run.task, run.train_model, run.optimizer, run.driver
    loop_cfg = run.loop_config(f"{task.info.name} [{schedule} x{lr_multiplier:g} seed {seed}]",
                               progress=progress, log_steps=run_dir is not None, eval_splits=eval_splits)
    logger = None if run_dir is None else RunLogger(run_dir)
    history: list[dict] = []

    def keep(epoch: int, step: int, so_far: list[dict]) -> None:
        history[:] = so_far

    record: dict[str, Any] = {"schedule": schedule, "optimizer": run.info["optimizer"], "seed": seed,
                              "lr_multiplier": lr_multiplier, "epochs": epochs, "metric": task.info.metric,
                              "higher_is_better": task.info.higher_is_better}
    t0 = time.perf_counter()
    try:
        train_loop(task, train_model, optimizer, driver, loop_cfg, logger=logger, engine=run.engine,
                   on_epoch_end=keep)
        record["status"] = "complete"
    except Diverged as d:
        record.update(status="diverged", error=str(d))
    record["wall_time_s"] = time.perf_counter() - t0
    record["history"] = history
    if record["status"] == "complete" and "test" in eval_splits:
        driver.before_eval()
        train_eval = task.evaluate(train_model, "train")
        if run_dir is not None and isinstance(task, ClassificationTask):
            # Per-example probabilities, once per run: what `python -m mlrsnet.ensemble from_bench=` combines.
            save_probabilities(run_dir / "probs.npz", task.predict_proba(train_model, "meta"),
                               task.predict_proba(train_model, "test"), task=task.info.name,
                               schedule=schedule, seed=seed, lr_multiplier=lr_multiplier)
        driver.after_eval()
        last = history[-1]
        record["final"] = {
            "loss_gap": last["test_loss"] - train_eval["loss"],
            "confidence_mean": last.get("test_confidence_correct", math.nan),
            "confidence_std": last.get("test_confidence_correct_std", math.nan),
        }
    if logger is not None:
        logger.close()
    return record


def _multiplier_tag(m: float) -> str:
    return f"x{m:g}"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def tune_lr(cfg: dict, schedule: str, out_dir: Path) -> dict:
    """Choose ``schedule``'s LR multiplier from ``lr_grid`` by the meta-validation metric at the end of a
    ``tune_epochs`` run with seed ``tune_seed`` (only the meta split is evaluated). Returns
    ``{"schedule", "chosen", "candidates": [{"lr_multiplier", "status", "score"}]}``."""
    if not cfg["tune"]:
        return {"schedule": schedule, "chosen": 1.0, "candidates": []}
    fp, epochs, seed = fingerprint(cfg), int(cfg["tune_epochs"] or cfg["epochs"]), int(cfg["tune_seed"])
    candidates = []
    for m in sorted(float(x) for x in cfg["lr_grid"]):
        path = out_dir / "tuning" / schedule / f"{_multiplier_tag(m)}.json"
        rec = _read(path)
        if not (rec and rec["fingerprint"] == fp and rec["epochs"] == epochs and rec["seed"] == seed):
            rec = train_run(cfg, schedule, seed, m, epochs=epochs, eval_splits=("meta",))
            rec["fingerprint"] = fp
            rec["score"] = rec["history"][-1][f"meta_{rec['metric']}"] if rec["status"] == "complete" else None
            atomic_write_json(path, rec)
        candidates.append({"lr_multiplier": m, "status": rec["status"], "score": rec["score"],
                           "metric": rec["metric"], "higher_is_better": rec["higher_is_better"]})
    finite = [c for c in candidates if c["score"] is not None and math.isfinite(c["score"])]
    if finite:
        sign = 1.0 if finite[0]["higher_is_better"] else -1.0
        best = max(finite, key=lambda c: (sign * c["score"], -abs(math.log(c["lr_multiplier"]))))
        chosen = best["lr_multiplier"]
    else:
        chosen = candidates[0]["lr_multiplier"]  # every candidate diverged: the smallest LR
    print(f"[tune {schedule}] " + ", ".join(
        f"x{c['lr_multiplier']:g}: {'diverged' if c['score'] is None else format(c['score'], '.4g')}"
        for c in candidates) + f" -> x{chosen:g}", flush=True)
    return {"schedule": schedule, "chosen": chosen, "candidates": candidates}


def _reached(history: list[dict], key: str, target: float, higher: bool) -> tuple[float, float]:
    """(epochs, seconds) until ``history[key]`` first reached ``target``; NaN if it never did."""
    seconds = 0.0
    for h in history:
        seconds += h["epoch_time"]
        if (h[key] >= target) if higher else (h[key] <= target):
            return float(h["epoch"]), seconds
    return math.nan, math.nan


def result_row(rec: dict, target: float | None) -> dict:
    """One ``results.csv`` row from a run record."""
    nan = math.nan
    row: dict[str, Any] = {"schedule": rec["schedule"], "optimizer": rec.get("optimizer", ""), "seed": rec["seed"],
                           "status": rec["status"],
                           "lr_multiplier": rec["lr_multiplier"], "wall_time_s": rec["wall_time_s"]}
    history = rec["history"]
    key = f"test_{rec['metric']}"
    row["peak_lr"] = max((h["lr_max"] for h in history), default=nan)
    done = rec["status"] == "complete"
    values = [h[key] for h in history] if done else []
    pick = max if rec["higher_is_better"] else min
    row["final_test"] = values[-1] if values else nan
    row["best_test"] = pick(values) if values else nan
    if target is not None and done:
        row["epochs_to_target"], row["seconds_to_target"] = _reached(history, key, target,
                                                                     rec["higher_is_better"])
    else:
        row["epochs_to_target"] = row["seconds_to_target"] = nan
    final = rec.get("final") or {}
    for k in ("loss_gap", "confidence_mean", "confidence_std"):
        row[k] = final.get(k, nan)
    return row


def _fmt(values: Sequence[float], digits: int) -> str:
    """``mean ± std`` (sample std) of the finite values, ``(k/n)`` when some are missing, ``—`` if none."""
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not finite:
        return "—"
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    text = f"{statistics.fmean(finite):.{digits}f} ± {std:.{digits}f}"
    return text if len(finite) == len(values) else f"{text} ({len(finite)}/{len(values)})"


def summarise(rows: list[dict], metric: str, target: float | None, seeds: list[int],
              grid_edge: frozenset[str] = frozenset()) -> str:
    """The Markdown table: one row per schedule, mean ± std over its seeds. Schedules in ``grid_edge``
    had their multiplier chosen at an end of the tuning grid (a wider grid might do better)."""
    tgt = "target" if target is None else f"{target:g}"
    header = ["schedule", "optimizer", "LR ×", "peak LR", f"final test {metric}", f"best test {metric}",
              f"epochs to {tgt}", f"seconds to {tgt}", "wall time (s)", "test−train loss gap",
              "confidence (correct) mean", "confidence (correct) std"]
    lines = [f"Mean ± std over seeds {seeds}. LR ×: the tuned multiplier of the schedule's base LR "
             "((edge): chosen at an end of the grid).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in dict.fromkeys(r["schedule"] for r in rows):
        mine = [r for r in rows if r["schedule"] == name]
        diverged = sum(r["status"] != "complete" for r in mine)
        label = name if not diverged else f"{name} ({diverged} diverged)"
        edge = " (edge)" if name in grid_edge else ""
        cells = [label, str(mine[0].get("optimizer", "")), f"{mine[0]['lr_multiplier']:g}{edge}",
                 _fmt([r["peak_lr"] for r in mine], 4)]
        cells += [_fmt([r[k] for r in mine], 4) for k in ("final_test", "best_test")]
        cells += [_fmt([r["epochs_to_target"] for r in mine], 1), _fmt([r["seconds_to_target"] for r in mine], 1),
                  _fmt([r["wall_time_s"] for r in mine], 1)]
        cells += [_fmt([r[k] for r in mine], 4) for k in ("loss_gap", "confidence_mean", "confidence_std")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def tuning_table(tuning_rows: list[dict], grid: list[float], metric: str, epochs: int, seed: int) -> str:
    """Markdown: every tuning candidate's meta-validation score, the chosen one in bold."""
    run = f"{epochs} epoch{'s' * (epochs != 1)}, seed {seed}"
    lines = ["", f"Tuning: meta-validation {metric} after {run}, for each multiplier of the base LR (**chosen**).",
             "", "| schedule | " + " | ".join(f"×{m:g}" for m in grid) + " |", "|" + "---|" * (len(grid) + 1)]
    for name in dict.fromkeys(t["schedule"] for t in tuning_rows):
        scores = {t["lr_multiplier"]: t for t in tuning_rows if t["schedule"] == name}
        cells = []
        for m in grid:
            t = scores.get(m)
            text = "—" if t is None else "diverged" if t[f"meta_{metric}"] is None else f"{t[f'meta_{metric}']:.4f}"
            cells.append(f"**{text}**" if t is not None and t["chosen"] else text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _collect(out_dir: Path, fp: str, seeds: list[int], order: list[str]) -> list[dict]:
    """Every run record under ``out_dir`` with fingerprint ``fp`` and a seed of ``seeds``, schedules in
    ``order`` first, then the rest alphabetically."""
    records = [r for p in sorted((out_dir / "runs").glob("*/seed*/run.json"))
               if (r := _read(p)) and r.get("fingerprint") == fp and r["seed"] in seeds]
    rank = {name: i for i, name in enumerate(order)}
    return sorted(records, key=lambda r: (rank.get(r["schedule"], len(rank)), r["schedule"], r["seed"]))


def bench(cfg: Any, out_dir: str | Path) -> dict:
    """Run the benchmark of the module docstring; write its outputs to ``out_dir`` and return
    ``{"rows", "table", "tuning", "files"}``."""
    cfg = to_plain(cfg)
    validate_bench(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(cfg)
    seeds = [int(s) for s in cfg["seeds"]]
    for name in cfg["schedules"]:
        m = tune_lr(cfg, name, out_dir)["chosen"]
        for seed in seeds:
            run_dir = out_dir / "runs" / name / f"seed{seed}"
            rec = _read(run_dir / "run.json")
            if rec and rec["fingerprint"] == fp and rec["lr_multiplier"] == m:
                continue
            # Multirun jobs sharing out_dir each train their own schedules; the lock makes two that were
            # given the same schedule refuse to interleave in one run directory.
            with open_run_dir(run_dir):
                rec = train_run(cfg, name, seed, m, epochs=int(cfg["epochs"]), eval_splits=("test", "meta"),
                                run_dir=run_dir, progress=bool(cfg["progress"]))
                rec["fingerprint"] = fp
                atomic_write_json(run_dir / "run.json", rec)
            last = rec["history"][-1] if rec["history"] else {}
            shown = last.get(f"test_{rec['metric']}", math.nan)
            print(f"[{name} seed {seed}] {rec['status']}: test {rec['metric']} {shown:.4f}, "
                  f"{rec['wall_time_s']:.1f} s", flush=True)
    return write_outputs(cfg, out_dir, fp, seeds)


def write_outputs(cfg: dict, out_dir: Path, fp: str, seeds: list[int]) -> dict:
    """Gather the run and tuning records of ``out_dir`` with fingerprint ``fp`` into the tables and
    plots."""
    records = _collect(out_dir, fp, seeds, list(cfg["schedules"]))
    target = cfg["target_metric"]
    rows = [result_row(r, target) for r in records]
    metric = records[0]["metric"]
    task_name = cfg["task"]["name"]
    files = {"results.csv": out_dir / "results.csv", "results.md": out_dir / "results.md",
             "tuning.csv": out_dir / "tuning.csv"}
    atomic_write_text(files["results.csv"], csv_text(rows, RESULT_COLUMNS))
    schedules = list(dict.fromkeys(r["schedule"] for r in records))
    grid = sorted(float(m) for m in cfg["lr_grid"]) if cfg["tune"] else []
    tune_epochs, tune_seed = int(cfg["tune_epochs"] or cfg["epochs"]), int(cfg["tune_seed"])
    tuning_rows = []
    for name in schedules:
        chosen = next(r["lr_multiplier"] for r in records if r["schedule"] == name)
        for m in grid:
            rec = _read(out_dir / "tuning" / name / f"{_multiplier_tag(m)}.json")
            if rec and rec["fingerprint"] == fp and rec["epochs"] == tune_epochs and rec["seed"] == tune_seed:
                tuning_rows.append({"schedule": name, "lr_multiplier": m, "status": rec["status"],
                                    f"meta_{metric}": rec["score"], "chosen": m == chosen})
    atomic_write_text(files["tuning.csv"],
                      csv_text(tuning_rows, ("schedule", "lr_multiplier", "status", f"meta_{metric}", "chosen")))
    edge = frozenset(t["schedule"] for t in tuning_rows
                     if t["chosen"] and len(grid) > 1 and t["lr_multiplier"] in (grid[0], grid[-1]))
    table = summarise(rows, metric, target, seeds, edge)
    tuned = tuning_table(tuning_rows, grid, metric, tune_epochs, tune_seed) if tuning_rows else ""
    out: dict[str, Any] = {"rows": rows, "table": table, "files": files}
    if cfg.get("select") == "fastest":
        out["selection"] = select_fastest(records, **{"target": target, **(cfg.get("select_params") or {})})
        files["selection.json"] = out_dir / "selection.json"
        atomic_write_json(files["selection.json"], out["selection"])
        out["table"] = table + selection_table(out["selection"])
    atomic_write_text(files["results.md"], f"# {task_name}: LR schedules\n\n{table}{tuned}"
                      + (selection_table(out["selection"]) if "selection" in out else ""))
    first = min(r["seed"] for r in records)
    curves = {}
    for name in schedules:
        path = out_dir / "runs" / name / f"seed{first}" / "metrics.jsonl"
        if path.is_file():
            curves[name] = [(r["step"], r["lr"]) for r in read_metrics(path) if r.get("type") == "step"]
    files["lr_curves.png"] = plot_lr_curves(curves, out_dir / "lr_curves.png",
                                            f"{task_name}: learning rate (seed {first})")
    histories = {name: [r["history"] for r in records if r["schedule"] == name and r["status"] == "complete"]
                 for name in schedules}
    files["metric_curves.png"] = plot_metric_curves(histories, metric, out_dir / "metric_curves.png",
                                                    f"{task_name}: mean ± std over seeds {seeds}")
    out["tuning"] = {name: [t for t in tuning_rows if t["schedule"] == name] for name in schedules}
    return out


def main() -> None:
    from mlrsnet.engine.cli import run_hydra, table_command

    run_hydra(table_command(bench), config_name="bench", group="task", command="bench", validate=validate_bench)


if __name__ == "__main__":
    main()
