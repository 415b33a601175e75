"""A study's ``results.csv``: one row per run, read from its run directories (shared by the study scripts).

Each row holds the keys the study varies (its own columns, first), then what the run directory records: status,
task, schedule, seed, epochs, the metric, the LR multiplier and optimiser, the final and best test and
meta-split metrics (fractions for accuracy, as the runs record them), the final training loss, the last epoch's
mean LR, the wall time, and the commit and torch version of ``environment.json`` (empty where the run predates
that file). The raw run directories are not committed; the study's script remakes them (reusing the finished
ones) and this CSV is what the README's numbers are computed from (``tests/test_evidence.py``).

Three run-directory formats are read: the runner's ``summary.json`` (:func:`mlrsnet.engine.runner.read_record`),
the ``summary.json`` of ``mlrsnet.train`` / ``mlrsnet.transfer`` (no ``higher_is_better``), and the bench's
``run.json`` from before the runner (its epoch history inline).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from mlrsnet.engine.log import csv_text, read_metrics
from mlrsnet.engine.runner import read_record
from mlrsnet.io import atomic_write_text

RUN_COLUMNS = ("status", "task", "schedule", "seed", "epochs", "epochs_run", "metric", "lr_multiplier", "optimizer",
               "final_test", "best_test", "final_meta", "best_meta", "final_train_loss", "final_lr_mean",
               "wall_time_s", "commit", "torch", "run_dir")
LOWER_IS_BETTER = ("perplexity", "loss")


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_row(run_dir: str | Path) -> dict | None:
    """The ``RUN_COLUMNS`` of the run in ``run_dir``; None where it holds no finished or diverged run."""
    run_dir = Path(run_dir)
    rec = read_record(run_dir)
    if rec is not None:
        summary = rec.summary()
        history = rec.history
        higher = rec.higher_is_better
    else:
        summary = _json(run_dir / "summary.json") or _json(run_dir / "run.json")
        if summary is None or "metric" not in summary:
            return None
        history = ([r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "epoch"]
                   if (run_dir / "metrics.jsonl").is_file() else summary.get("history", []))
        higher = summary.get("higher_is_better", summary["metric"] not in LOWER_IS_BETTER)
    if summary.get("status", "complete") not in ("complete", "diverged"):
        return None
    metric = summary["metric"]
    pick = max if higher else min

    def final_best(split: str) -> tuple[float | None, float | None]:
        values = [h[f"{split}_{metric}"] for h in history if h.get(f"{split}_{metric}") is not None]
        final = summary.get(f"final_{split}_{metric}", values[-1] if values else None)
        best = summary.get(f"best_{split}_{metric}", pick(values) if values else None)
        return final, best

    final_test, best_test = final_best("test")
    final_meta, best_meta = final_best("meta")
    last = history[-1] if history else {}
    env = _json(run_dir / "environment.json") or {}
    return {"status": summary.get("status", "complete"), "task": summary.get("task", ""),
            "schedule": summary.get("schedule", ""), "seed": summary.get("seed"), "epochs": summary.get("epochs"),
            "epochs_run": len(history), "metric": metric, "lr_multiplier": summary.get("lr_multiplier", ""),
            "optimizer": summary.get("optimizer", ""), "final_test": final_test, "best_test": best_test,
            "final_meta": final_meta, "best_meta": best_meta,
            "final_train_loss": summary.get("final_train_loss", last.get("train_loss")),
            "final_lr_mean": last.get("lr_mean"), "wall_time_s": summary.get("wall_time_s"),
            "commit": env.get("git_commit", ""), "torch": (env.get("versions") or {}).get("torch", ""),
            "run_dir": run_dir.as_posix()}


def collect(runs: Iterable[tuple[dict, Path]]) -> list[dict]:
    """A row per ``(keys, run_dir)`` whose directory holds a finished run: the study's ``keys`` first (they win
    over a run column of the same name, e.g. a study's own ``schedule`` label)."""
    rows = []
    for keys, run_dir in runs:
        row = run_row(run_dir)
        if row is not None:
            rows.append({**row, **keys})
    return rows


def write_results(path: str | Path, rows: list[dict], keys: Sequence[str]) -> Path:
    """``rows`` as ``path`` (``results.csv``): the study's ``keys``, then ``RUN_COLUMNS``."""
    path = Path(path)
    columns = [*keys, *(c for c in RUN_COLUMNS if c not in keys)]
    atomic_write_text(path, csv_text(rows, columns))
    return path
