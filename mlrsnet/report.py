"""Aggregate a sweep: one row per configuration, mean ± std over its runs (seeds).

Command line::

    python -m mlrsnet.report SWEEP_DIR [--format md|csv|json] [--out FILE]

Every ``summary.json`` below ``SWEEP_DIR`` is one run; its ``config.yaml`` (next to it) says what it
ran. A benchmark directory (:mod:`mlrsnet.bench`) holds one run directory per (schedule, seed) under ``runs/``,
each a run of its schedule and LR multiplier, and a suite directory (:mod:`mlrsnet.suite`) one per (workload,
schedule, seed); their tuning runs (``tuning/``, ``trial<k>/``: scored on the meta split only) are left out.

A *configuration* is the set of config values that differ between the runs, leaving out the seed, the keys that
do not change results and the commands' own keys (:mod:`mlrsnet.engine.fingerprint`: ``progress``,
``logger``, ``resume``, the device, a benchmark's list of schedules...). Columns: those
values, ``n`` (complete runs), ``diverged`` (runs stopped by the divergence guard, if any), then
mean ± sample std of every numeric ``final_*`` / ``best_*`` summary field and of ``wall_time_s``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from mlrsnet.engine.fingerprint import COMMAND, MACHINE, NEUTRAL
from mlrsnet.errors import MLRSNetError

IGNORED_KEYS = ("seed", "guard", *sorted(NEUTRAL | MACHINE | COMMAND))


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept as values."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}{key}."))
    return out


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in IGNORED_KEYS)


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every run below ``sweep_dir`` (a benchmark's tuning runs aside): ``{"dir", "summary", "config"}``
    (config flattened, with the run's LR multiplier where it is not 1; from the summary's task and schedule when
    the run has no config.yaml)."""
    import yaml

    root = Path(sweep_dir)
    runs = []
    for path in sorted(root.rglob("summary.json")):
        parts = path.relative_to(root).parts[:-1]
        if "tuning" in parts or (parts and parts[-1].startswith("trial")):  # a bench's or a suite's tuning runs
            continue
        summary = json.loads(path.read_text())
        config_file = path.parent / "config.yaml"
        if config_file.is_file():
            config = flatten(yaml.safe_load(config_file.read_text()) or {})
            if "schedule.name" in config:  # the schedule config group: its name is the schedule column
                config["schedule"] = config.pop("schedule.name")
        else:
            config = {"task.name": summary.get("task"), "schedule": summary.get("schedule")}
        if summary.get("variant"):  # a suite's variant of a schedule (mlrsnet.suite): its name is the column
            config["schedule"] = summary["variant"]
        if summary.get("lr_multiplier", 1.0) != 1.0:
            config["lr_multiplier"] = summary["lr_multiplier"]
        runs.append({"dir": path.parent, "summary": summary, "config": config})
    return runs


def aggregate(runs: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Group runs by configuration; returns the configuration keys and one row per configuration with
    ``n``, ``diverged`` and, per metric, ``(mean, std, count)``."""
    keys = sorted(k for k in {k for r in runs for k in r["config"]} if not _ignored(k))
    varying = [k for k in keys if len({json.dumps(r["config"].get(k), sort_keys=True) for r in runs}) > 1]
    if not varying:
        varying = [k for k in ("task.name", "schedule") if k in keys]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(tuple(json.dumps(run["config"].get(k)) for k in varying), []).append(run)
    rows = []
    for ident, members in groups.items():
        done = [m["summary"] for m in members if m["summary"].get("status", "complete") == "complete"]
        row: dict[str, Any] = {k: json.loads(v) for k, v in zip(varying, ident, strict=True)}
        row["n"] = len(done)
        row["diverged"] = sum(m["summary"].get("status") == "diverged" for m in members)
        fields = sorted({k for s in done for k, v in s.items() if _is_metric(k, v)})
        row["metrics"] = {f: _stats([s[f] for s in done if _is_metric(f, s.get(f))]) for f in fields}
        rows.append(row)
    return varying, rows


def _is_metric(key: str, value: Any) -> bool:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return numeric and (key.startswith(("final_", "best_")) or key == "wall_time_s")


def _stats(values: list[float]) -> tuple[float, float, int]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return mean, std, len(values)


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def render(varying: list[str], rows: list[dict[str, Any]], fmt: str = "md") -> str:
    """The table as Markdown (``md``), CSV (mean and std in separate columns) or JSON."""
    metrics = sorted({m for r in rows for m in r["metrics"]})
    show_diverged = any(r["diverged"] for r in rows)
    if fmt == "json":
        return json.dumps([{**{k: r[k] for k in varying}, "n": r["n"], "diverged": r["diverged"],
                            **{m: {"mean": s[0], "std": None if math.isnan(s[1]) else s[1], "count": s[2]}
                               for m, s in r["metrics"].items()}} for r in rows], indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*varying, "n", "diverged", *[f"{m}{p}" for m in metrics for p in ("_mean", "_std")]])
        for r in rows:
            cells = []
            for m in metrics:
                mean, std, _ = r["metrics"].get(m, (math.nan, math.nan, 0))
                cells += [f"{mean:.6g}", "" if math.isnan(std) else f"{std:.6g}"]
            writer.writerow([*[r[k] for k in varying], r["n"], r["diverged"], *cells])
        return buf.getvalue()
    header = [*varying, "n", *(["diverged"] if show_diverged else []), *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [str(r[k]) for k in varying] + [str(r["n"])] + ([str(r["diverged"])] if show_diverged else [])
        cells += [_fmt(*r["metrics"][m][:2]) if m in r["metrics"] else "" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report(sweep_dir: str | Path, fmt: str = "md") -> str:
    """The aggregated table of every run below ``sweep_dir``."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise MLRSNetError(f"{root} is not a directory; pass the sweep directory of a multirun (hydra.sweep.dir)")
    runs = collect(root)
    if not runs:
        raise MLRSNetError(f"no summary.json under {root}; pass a sweep or benchmark directory whose runs have "
                           "finished")
    return render(*aggregate(runs), fmt=fmt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlrsnet.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a multirun directory (or any directory with runs below it)")
    parser.add_argument("--format", choices=("md", "csv", "json"), default="md")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    try:
        table = report(args.sweep_dir, args.format)
    except MLRSNetError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    sys.stdout.write(table)
    if args.out:
        from mlrsnet.io import atomic_write_text

        atomic_write_text(args.out, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
