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
   are built from the seed by :func:`mlrsnet.engine.build.build_run`, as every command builds them, and trained
   for ``epochs`` epochs with the chosen ``m`` through the runner (:func:`mlrsnet.engine.runner.execute`), the
   test and meta splits evaluated after every epoch. The divergence guard of ``guard`` applies; a diverged run is
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
- ``runs/<schedule>/seed<k>/`` (a run directory: ``metrics.jsonl`` per step and epoch, ``summary.json`` and,
  for classification tasks, ``probs.npz``: the per-example probabilities on the meta and test splits after the
  last epoch, float16, for ``python -m mlrsnet.ensemble from_bench=``) and ``tuning/<schedule>/x<m>/``;
- with ``select=fastest``: FastSpiker's choice of policy (:mod:`mlrsnet.engine.selection`, on the meta split
  only) in ``selection.json`` and as a section of ``results.md``.

Runs go ``jobs`` at a time (null: the CPUs this process may use) as separate processes, one torch thread each
(:func:`mlrsnet.engine.parallel.run_jobs`): the tuning candidates of every schedule, then every seed. ``jobs=1``
runs them one after another in this process with ``threads`` threads (the numbers of an earlier version's
sequential bench: the thread count moves the last digits).

Every run goes through the runner: a locked run directory, its state saved every epoch and on SIGTERM / SIGUSR1 /
SIGUSR2 (exit code 75; the same command resumes the run in flight). Every run record carries its fingerprint
(:mod:`mlrsnet.engine.fingerprint`); a finished run with the current fingerprint is reused instead of rerun, and
the tables gather every run of ``out_dir`` with the current config: Hydra multirun jobs that share an
``out_dir`` (e.g. ``-m schedules=[fixed],[cosine] out_dir=runs/bench/x``) each train their own schedules and
write the table of all that are done.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlrsnet.engine.build import Run, check_optimizer, usable_cpus
from mlrsnet.engine.config import BenchConfig, ScheduleChoice, parse_config, schedule_choice
from mlrsnet.engine.figures import plot_lr_curves, plot_metric_curves
from mlrsnet.engine.fingerprint import MACHINE, fingerprint
from mlrsnet.engine.log import RunLogger, csv_text, read_metrics
from mlrsnet.engine.parallel import run_jobs
from mlrsnet.engine.record import save_probabilities
from mlrsnet.engine.resume import StopSignals
from mlrsnet.engine.runner import RunRecord, execute, finished, read_record, stopped_between_runs
from mlrsnet.engine.selection import select_fastest, selection_table
from mlrsnet.errors import ConfigError
from mlrsnet.io import atomic_write_json, atomic_write_text
from mlrsnet.rundir import exclusive
from mlrsnet.tasks.base import ClassificationTask

__all__ = ["bench", "summarise", "train_run", "tune_lr", "validate_bench"]

RESULT_COLUMNS = ("schedule", "optimizer", "seed", "status", "lr_multiplier", "peak_lr", "final_test", "best_test",
                  "epochs_to_target", "seconds_to_target", "wall_time_s", "loss_gap", "confidence_mean",
                  "confidence_std")


def validate_bench(cfg: Any) -> BenchConfig:
    """The typed config of ``python -m mlrsnet.bench`` (:func:`mlrsnet.engine.config.parse_config`), every listed
    schedule's parameters and optimiser included (:func:`mlrsnet.engine.build.check_optimizer`)."""
    typed = parse_config(cfg, "bench")
    assert isinstance(typed, BenchConfig)
    for name in typed.schedules:
        check_optimizer(typed, schedule_choice(typed, name))
    return typed


def config_fingerprint(cfg: BenchConfig) -> str:
    """The fingerprint of the bench's config, the chosen schedule, the run's seed and length and the machine
    (device, threads: they move only the last digits) aside: the runs of one out_dir with this fingerprint form
    one table."""
    return fingerprint(cfg, drop=frozenset({"schedule", "seed", "epochs"}) | MACHINE)


def run_fingerprint(cfg: BenchConfig, schedule: str, seed: int, lr_multiplier: float, epochs: int,
                    eval_splits: tuple[str, ...]) -> str:
    """The fingerprint of one run of the bench: its config, its schedule (parameters, optimiser), seed, LR
    multiplier, length and evaluated splits."""
    choice = schedule_choice(cfg, schedule)
    return fingerprint(cfg, drop=frozenset({"schedule", "seed", "epochs"}), schedule=schedule,
                       params=dataclasses.asdict(choice.params), optimizer=choice.optimizer, seed=seed,
                       lr_multiplier=lr_multiplier, epochs=epochs, eval_splits=list(eval_splits))


def _final_metrics(run: Run, record: RunRecord, run_dir: Path, logger: RunLogger) -> None:
    """LRBench's robustness and confidence metrics at the end of a run that evaluated the test split, and, for a
    classification task, its per-example probabilities (``probs.npz``, what ``mlrsnet.ensemble from_bench=``
    combines)."""
    task, driver = run.task, run.driver
    if not record.history or "test_loss" not in record.history[-1]:
        return
    driver.before_eval()
    train_eval = task.evaluate(run.train_model, "train")
    if isinstance(task, ClassificationTask):
        save_probabilities(run_dir / "probs.npz", task.predict_proba(run.train_model, "meta"),
                           task.predict_proba(run.train_model, "test"), task=task.info.name,
                           schedule=run.schedule, seed=run.seed, lr_multiplier=record.lr_multiplier)
    driver.after_eval()
    last = record.history[-1]
    record.info["final"] = {
        "loss_gap": last["test_loss"] - train_eval["loss"],
        "confidence_mean": last.get("test_confidence_correct", math.nan),
        "confidence_std": last.get("test_confidence_correct_std", math.nan),
    }


def train_run(cfg: BenchConfig, schedule: str, seed: int, lr_multiplier: float, run_dir: Path, stop: StopSignals,
              *, epochs: int, eval_splits: tuple[str, ...]) -> RunRecord:
    """One (schedule, seed, LR multiplier) run of ``epochs`` epochs in ``run_dir``, evaluating ``eval_splits``
    after every epoch: the finished record there when it has this run's fingerprint, else the record of a run
    trained (or resumed) now. A record of another config in ``run_dir`` is a one-line error."""
    fp = run_fingerprint(cfg, schedule, seed, lr_multiplier, epochs, eval_splits)
    done = finished(run_dir, fp)
    if done is not None:
        return done
    old = read_record(run_dir)
    if old is not None and old.fingerprint != fp:
        raise ConfigError(f"{run_dir} holds a run of another configuration (fingerprint {old.fingerprint}, this "
                          f"one {fp}); give this benchmark its own out_dir, or delete {run_dir}")
    typed = dataclasses.replace(cfg, epochs=epochs)
    chosen = isinstance(cfg.schedule, ScheduleChoice) and cfg.schedule.name == schedule
    return execute(typed, run_dir, stop, schedule=schedule, seed=seed, lr_multiplier=lr_multiplier,
                   eval_splits=eval_splits, on_divergence="record", fingerprint=fp, plot_lr=False,
                   gamma_key="schedule.gamma" if chosen else f"schedule_params.{schedule}.gamma",
                   extra={"config_fingerprint": config_fingerprint(cfg)},
                   finish=_final_metrics if "test" in eval_splits else None)


def _multiplier_tag(m: float) -> str:
    return f"x{m:g}"


@dataclasses.dataclass
class _Job:
    """One run of the benchmark, as a worker process takes it."""

    cfg: BenchConfig
    schedule: str
    seed: int
    lr_multiplier: float
    run_dir: Path
    epochs: int
    eval_splits: tuple[str, ...]


def _run_job(job: _Job) -> RunRecord:
    with StopSignals() as stop:
        record = train_run(job.cfg, job.schedule, job.seed, job.lr_multiplier, job.run_dir, stop, epochs=job.epochs,
                           eval_splits=job.eval_splits)
        stopped_between_runs(stop, job.run_dir)
    return record


def choose(schedule: str, candidates: list[dict]) -> float:
    """The tuned multiplier: the best meta score (ties: the multiplier closest to 1); every candidate diverged:
    the smallest."""
    finite = [c for c in candidates if c["score"] is not None and math.isfinite(c["score"])]
    if finite:
        sign = 1.0 if finite[0]["higher_is_better"] else -1.0
        chosen = max(finite, key=lambda c: (sign * c["score"], -abs(math.log(c["lr_multiplier"]))))["lr_multiplier"]
    else:
        chosen = candidates[0]["lr_multiplier"]
    print(f"[tune {schedule}] " + ", ".join(
        f"x{c['lr_multiplier']:g}: {'diverged' if c['score'] is None else format(c['score'], '.4g')}"
        for c in candidates) + f" -> x{chosen:g}", flush=True)
    return chosen


def tune_lr(cfg: BenchConfig, schedules: list[str], out_dir: Path, jobs: int = 1) -> dict[str, dict]:
    """Choose each schedule's LR multiplier from ``lr_grid`` by the meta-validation metric at the end of a
    ``tune_epochs`` run with seed ``tune_seed`` (only the meta split is evaluated); the candidates of every
    schedule run ``jobs`` at a time. Returns, per schedule, ``{"schedule", "chosen", "candidates":
    [{"lr_multiplier", "status", "score", "higher_is_better"}]}``; ``tune=false``: 1, no candidates."""
    if not cfg.tune:
        return {name: {"schedule": name, "chosen": 1.0, "candidates": []} for name in schedules}
    epochs, seed = cfg.tune_epochs or cfg.epochs, cfg.tune_seed
    grid = sorted(float(x) for x in cfg.lr_grid)
    planned = [_Job(cfg, name, seed, m, out_dir / "tuning" / name / _multiplier_tag(m), epochs, ("meta",))
               for name in schedules for m in grid]
    records = run_jobs(_run_job, planned, jobs)
    out = {}
    for name in schedules:
        candidates = [{"lr_multiplier": job.lr_multiplier, "status": rec.status,
                       "score": rec.final_meta if rec.status == "complete" else None,
                       "higher_is_better": rec.higher_is_better}
                      for job, rec in zip(planned, records, strict=True) if job.schedule == name]
        out[name] = {"schedule": name, "chosen": choose(name, candidates), "candidates": candidates}
    return out


def _reached(history: list[dict], key: str, target: float, higher: bool) -> tuple[float, float]:
    """(epochs, seconds) until ``history[key]`` first reached ``target``; NaN if it never did."""
    seconds = 0.0
    for h in history:
        seconds += h["epoch_time"]
        if (h[key] >= target) if higher else (h[key] <= target):
            return float(h["epoch"]), seconds
    return math.nan, math.nan


def result_row(rec: RunRecord, target: float | None) -> dict:
    """One ``results.csv`` row from a run record."""
    nan = math.nan
    row: dict[str, Any] = {"schedule": rec.schedule, "optimizer": rec.info.get("optimizer", ""), "seed": rec.seed,
                           "status": rec.status, "lr_multiplier": rec.lr_multiplier, "wall_time_s": rec.wall_time_s}
    history = rec.history
    key = f"test_{rec.metric}"
    row["peak_lr"] = max((h["lr_max"] for h in history), default=nan)
    done = rec.status == "complete"
    values = [h[key] for h in history] if done else []
    pick = max if rec.higher_is_better else min
    row["final_test"] = values[-1] if values else nan
    row["best_test"] = pick(values) if values else nan
    if target is not None and done:
        row["epochs_to_target"], row["seconds_to_target"] = _reached(history, key, target, rec.higher_is_better)
    else:
        row["epochs_to_target"] = row["seconds_to_target"] = nan
    final = rec.info.get("final") or {}
    for k in ("loss_gap", "confidence_mean", "confidence_std"):
        row[k] = final.get(k, nan)
    return row


def _fmt(values: Sequence[float], digits: int) -> str:
    """``mean ± std`` (sample std) of the finite values (``± n/a`` for one value), ``(k/n)`` when some are
    missing, ``—`` if none."""
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not finite:
        return "—"
    std = f"{statistics.stdev(finite):.{digits}f}" if len(finite) > 1 else "n/a"
    text = f"{statistics.fmean(finite):.{digits}f} ± {std}"
    return text if len(finite) == len(values) else f"{text} ({len(finite)}/{len(values)})"


def summarise(rows: list[dict], metric: str, target: float | None, seeds: list[int],
              grid_edge: frozenset[str] = frozenset()) -> str:
    """The Markdown table: one row per schedule, mean ± std over its seeds. Schedules in ``grid_edge``
    had their multiplier chosen at an end of the tuning grid (a wider grid might do better)."""
    tgt = "target" if target is None else f"{target:g}"
    header = ["schedule", "optimizer", "n", "LR ×", "peak LR", f"final test {metric}", f"best test {metric}",
              f"epochs to {tgt}", f"seconds to {tgt}", "wall time (s)", "test−train loss gap",
              "confidence (correct) mean", "confidence (correct) std"]
    lines = [f"Mean ± std over the seeds each schedule has finished (n; of {seeds}). LR ×: the tuned multiplier "
             "of the schedule's base LR ((edge): chosen at an end of the grid).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in dict.fromkeys(r["schedule"] for r in rows):
        mine = [r for r in rows if r["schedule"] == name]
        diverged = sum(r["status"] != "complete" for r in mine)
        label = name if not diverged else f"{name} ({diverged} diverged)"
        edge = " (edge)" if name in grid_edge else ""
        cells = [label, str(mine[0].get("optimizer", "")), str(len(mine)), f"{mine[0]['lr_multiplier']:g}{edge}",
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


def _collect(out_dir: Path, cfp: str, seeds: list[int], order: list[str]) -> list[RunRecord]:
    """Every finished run under ``out_dir/runs`` with config fingerprint ``cfp`` and a seed of ``seeds``,
    schedules in ``order`` first, then the rest alphabetically."""
    records = [r for p in sorted((out_dir / "runs").glob("*/seed*/summary.json"))
               if (r := read_record(p.parent)) is not None and r.info.get("config_fingerprint") == cfp
               and r.seed in seeds and r.status in ("complete", "diverged")]
    rank = {name: i for i, name in enumerate(order)}
    return sorted(records, key=lambda r: (rank.get(r.schedule, len(rank)), r.schedule, r.seed))


def bench(cfg: Any, out_dir: str | Path) -> dict:
    """Run the benchmark of the module docstring; write its outputs to ``out_dir`` and return
    ``{"rows", "table", "tuning", "files"}``."""
    typed = validate_bench(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = typed.jobs or usable_cpus()
    if jobs > 1:  # separate processes share the cores: one torch thread each
        typed = dataclasses.replace(typed, threads=1, progress=False)
    with StopSignals():
        chosen = {name: t["chosen"] for name, t in tune_lr(typed, list(typed.schedules), out_dir, jobs).items()}
        planned = [_Job(typed, name, seed, chosen[name], out_dir / "runs" / name / f"seed{seed}", typed.epochs,
                        ("test", "meta")) for name in typed.schedules for seed in typed.seeds]
        for job, rec in zip(planned, run_jobs(_run_job, planned, jobs), strict=True):
            shown = rec.history[-1].get(f"test_{rec.metric}", math.nan) if rec.history else math.nan
            print(f"[{job.schedule} seed {job.seed}] {rec.status}: test {rec.metric} {shown:.4f}, "
                  f"{rec.wall_time_s:.1f} s", flush=True)
    # Multirun jobs sharing out_dir write the tables one at a time, each from every run finished by then.
    with exclusive(out_dir / ".tables.lock"):
        return write_outputs(typed, out_dir)


def write_outputs(cfg: BenchConfig, out_dir: Path) -> dict:
    """Gather the run and tuning records of ``out_dir`` with the current config into the tables and plots."""
    seeds = list(dict.fromkeys(cfg.seeds))
    records = _collect(out_dir, config_fingerprint(cfg), seeds, list(cfg.schedules))
    target = cfg.target_metric
    rows = [result_row(r, target) for r in records]
    metric = records[0].metric
    task_name = cfg.task.name
    files = {"results.csv": out_dir / "results.csv", "results.md": out_dir / "results.md",
             "tuning.csv": out_dir / "tuning.csv"}
    atomic_write_text(files["results.csv"], csv_text(rows, RESULT_COLUMNS))
    schedules = list(dict.fromkeys(r.schedule for r in records))
    grid = sorted(float(m) for m in cfg.lr_grid) if cfg.tune else []
    tune_epochs, tune_seed = cfg.tune_epochs or cfg.epochs, cfg.tune_seed
    tuning_rows = []
    for name in schedules:
        chosen = next(r.lr_multiplier for r in records if r.schedule == name)
        for m in grid:
            fp = run_fingerprint(cfg, name, tune_seed, m, tune_epochs, ("meta",))
            rec = finished(out_dir / "tuning" / name / _multiplier_tag(m), fp)
            if rec is not None:
                score = rec.final_meta if rec.status == "complete" else None
                tuning_rows.append({"schedule": name, "lr_multiplier": m, "status": rec.status,
                                    f"meta_{metric}": score, "chosen": m == chosen})
    atomic_write_text(files["tuning.csv"],
                      csv_text(tuning_rows, ("schedule", "lr_multiplier", "status", f"meta_{metric}", "chosen")))
    edge = frozenset(t["schedule"] for t in tuning_rows
                     if t["chosen"] and len(grid) > 1 and t["lr_multiplier"] in (grid[0], grid[-1]))
    table = summarise(rows, metric, target, seeds, edge)
    tuned = tuning_table(tuning_rows, grid, metric, tune_epochs, tune_seed) if tuning_rows else ""
    out: dict[str, Any] = {"rows": rows, "table": table, "files": files}
    if cfg.select == "fastest":
        as_dicts = [{**r.summary(), "history": r.history} for r in records]
        out["selection"] = select_fastest(as_dicts, **{"target": target, **cfg.select_params})
        files["selection.json"] = out_dir / "selection.json"
        atomic_write_json(files["selection.json"], out["selection"])
        out["table"] = table + selection_table(out["selection"])
    atomic_write_text(files["results.md"], f"# {task_name}: LR schedules\n\n{table}{tuned}"
                      + (selection_table(out["selection"]) if "selection" in out else ""))
    first = min(r.seed for r in records)
    curves = {}
    for name in schedules:
        path = out_dir / "runs" / name / f"seed{first}" / "metrics.jsonl"
        if path.is_file():
            curves[name] = [(r["step"], r["lr"]) for r in read_metrics(path) if r.get("type") == "step"]
    files["lr_curves.png"] = plot_lr_curves(curves, out_dir / "lr_curves.png",
                                            f"{task_name}: learning rate (seed {first})")
    histories = {name: [r.history for r in records if r.schedule == name and r.status == "complete"]
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
