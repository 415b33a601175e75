r"""The pool of base models an LR-policy search trains anyway (Jin & Wu, LREnsemble, 2024).

A pool entry is data: ``(name, schedule, params, lr_multipliers)``: a ``schedule=`` name, its keyword
parameters (what ``schedule_params.<schedule>`` holds, or a ``conf/schedule/<name>.yaml`` file's keys) and
the multipliers of its base LR (the base optimiser's LR, or MLR-SNet's gamma), one base model each. Param
values may be run-relative strings, resolved when the run length is known (:func:`resolve_relative`)::

    "0.5*T"  -> round(0.5 * total training steps)      "T" -> total steps
    "0.1*lr0" -> 0.1 * the base optimiser's LR           "lr0" -> that LR

so that e.g. an LRBench ``COMPOSITE`` policy (absolute steps and LRs) fits any run length.

Each base model is a run of the runner every command uses (:func:`mlrsnet.engine.runner.execute` with the
entry's schedule, params and multiplier, the meta split evaluated per epoch, its own locked run directory,
resumable after a stop) and, after its last epoch, its per-example class probabilities on the meta split and on
the test split are saved (``probs.npz``, float16; :func:`~mlrsnet.engine.record.save_probabilities`).
``mlrsnet.bench`` saves the same file for each of its runs, so :func:`bench_pool` builds a pool from a finished
benchmark without retraining.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlrsnet.engine.build import Run, resolve_device
from mlrsnet.engine.config import ScheduleChoice, TrainConfig, schedule_choice
from mlrsnet.engine.fingerprint import fingerprint
from mlrsnet.engine.log import RunLogger
from mlrsnet.engine.record import PROBS_FILE, load_probabilities, save_probabilities
from mlrsnet.engine.resume import StopSignals
from mlrsnet.engine.runner import RunRecord, execute, finished
from mlrsnet.errors import ConfigError
from mlrsnet.schedules.registry import get_schedule, parse_params
from mlrsnet.tasks import build_task

__all__ = ["Pool", "PoolEntry", "bench_pool", "pool_entries", "resolve_relative", "train_member", "train_pool"]

_RELATIVE = re.compile(r"^\s*(?:([0-9.eE+-]+)\s*\*\s*)?(T|lr0)\s*$")


@dataclass(frozen=True)
class PoolEntry:
    """One base model: ``schedule`` with ``params`` at ``lr_multiplier`` times its base LR; ``name`` is the
    pool entry's (the LR policy's) name."""

    name: str
    schedule: str
    params: dict
    lr_multiplier: float

    @property
    def member(self) -> str:
        """The base model's name: ``<policy>@x<multiplier>``."""
        return f"{self.name}@x{self.lr_multiplier:g}"


def pool_entries(spec: Sequence[dict]) -> list[PoolEntry]:
    """The base models of a pool spec: a list of ``{name, schedule, params, lr_multipliers}`` (``schedule``
    defaults to ``name``, ``params`` to none), one :class:`PoolEntry` per multiplier."""
    if not isinstance(spec, Sequence) or isinstance(spec, str) or not spec:
        raise ConfigError("pool must be a non-empty list of {name, schedule, params, lr_multipliers} entries")
    out: list[PoolEntry] = []
    for item in spec:
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"pool entry {item!r} must be a mapping with at least a name, e.g. "
                              "{name: cosine, lr_multipliers: [0.5, 1]}")
        unknown = set(item) - {"name", "schedule", "params", "lr_multipliers"}
        if unknown:
            raise ConfigError(f"pool entry {item['name']}: unknown key(s) {', '.join(sorted(unknown))}; use name, "
                              "schedule, params, lr_multipliers")
        schedule = str(item.get("schedule") or item["name"])
        get_schedule(schedule)
        params = dict(item.get("params") or {})
        mults = item.get("lr_multipliers", [1.0])
        if not isinstance(mults, Sequence) or isinstance(mults, str) or not mults or not all(
                isinstance(m, int | float) and not isinstance(m, bool) and m > 0 for m in mults):
            raise ConfigError(f"pool entry {item['name']}: lr_multipliers must be a non-empty list of positive "
                              f"numbers, got {mults!r}")
        out.extend(PoolEntry(str(item["name"]), schedule, params, float(m)) for m in mults)
    names = [e.member for e in out]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"pool lists the base model {twice} twice; give its entries different names or "
                          "multipliers")
    return out


def resolve_relative(value: Any, total_steps: int, lr0: float) -> Any:
    """``value`` with every run-relative string (``"0.5*T"``, ``"T"``, ``"0.1*lr0"``, ``"lr0"``) replaced,
    in nested lists and mappings too."""
    if isinstance(value, dict):
        return {k: resolve_relative(v, total_steps, lr0) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_relative(v, total_steps, lr0) for v in value]
    if isinstance(value, str):
        found = _RELATIVE.match(value)
        if found:
            factor = float(found.group(1) or 1.0)
            return max(1, round(factor * total_steps)) if found.group(2) == "T" else factor * lr0
    return value


def _needs_resolving(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_needs_resolving(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_needs_resolving(v) for v in value)
    return isinstance(value, str) and bool(_RELATIVE.match(value))


@dataclass
class Pool:
    """Base models' probabilities on the meta and test splits: ``meta_probs[M, N, C]``, ``test_probs[M, N', C]``;
    ``names[M]`` (``<policy>@x<multiplier>``), ``policies[M]`` (the LR policy of each), ``records[M]`` (how
    each was trained: status, epochs, wall time, meta and test accuracy)."""

    names: list[str]
    policies: list[str]
    meta_probs: np.ndarray
    meta_labels: np.ndarray
    test_probs: np.ndarray
    test_labels: np.ndarray
    records: list[dict]

    @classmethod
    def from_files(cls, files: list[tuple[str, str, dict]]) -> Pool:
        """A pool from ``(name, policy, record)`` triples whose record names its ``probs.npz`` in ``path``."""
        if not files:
            raise ConfigError("the pool has no trained base model (every one diverged or none was found)")
        loaded = [load_probabilities(rec["path"]) for _, _, rec in files]
        first = loaded[0]
        for (name, _, _), z in zip(files, loaded, strict=True):
            for split in ("meta", "test"):
                if not np.array_equal(z[f"{split}_labels"], first[f"{split}_labels"]):
                    raise ConfigError(f"base model {name} was evaluated on another {split} split than "
                                      f"{files[0][0]}; a pool needs one task, one seed and one split")
        return cls([n for n, _, _ in files], [p for _, p, _ in files],
                   np.stack([z["meta_probs"] for z in loaded]), first["meta_labels"],
                   np.stack([z["test_probs"] for z in loaded]), first["test_labels"], [r for _, _, r in files])


def _choice(cfg: TrainConfig, entry: PoolEntry, params: dict) -> ScheduleChoice:
    """The schedule of a pool entry: its declared (or chosen) optimiser, the entry's parameters."""
    base = schedule_choice(cfg, entry.schedule)
    return ScheduleChoice(entry.schedule, base.optimizer,
                          parse_params(entry.schedule, params, f"pool.{entry.name}.params."))


def _save_member(run: Run, record: RunRecord, run_dir: Path, logger: RunLogger) -> None:
    """A base model's per-example probabilities on the meta and test splits, and its accuracies."""
    run.driver.before_eval()
    meta = run.task.predict_proba(run.train_model, "meta")
    test = run.task.predict_proba(run.train_model, "test")
    run.driver.after_eval()
    record.info["meta_accuracy"] = float((meta[0].argmax(1) == meta[1]).float().mean())
    record.info["test_accuracy"] = float((test[0].argmax(1) == test[1]).float().mean())
    save_probabilities(run_dir / PROBS_FILE, meta, test, task=run.task.info.name, member=record.info["member"],
                       schedule=run.schedule, seed=run.seed, lr_multiplier=record.lr_multiplier)


def train_member(cfg: TrainConfig, entry: PoolEntry, seed: int, member_dir: Path, stop: StopSignals,
                 total_steps: int | None = None) -> dict:
    """Train one base model (or reuse a finished one in ``member_dir`` with the same configuration) and
    return its record; a complete one has its probabilities in ``member_dir/probs.npz``."""
    params = entry.params
    if _needs_resolving(params):
        if total_steps is None:
            raise ConfigError(f"pool entry {entry.name}: run-relative params need the run length")
        params = resolve_relative(params, total_steps, cfg.optimizer.lr)
    choice = _choice(cfg, entry, params)
    fp = fingerprint(cfg, drop=frozenset({"schedule", "seed", "schedule_params"}), schedule=entry.schedule,
                     params=dataclasses.asdict(choice.params), optimizer=choice.optimizer,
                     lr_multiplier=entry.lr_multiplier, seed=seed)
    record = finished(member_dir, fp)
    if record is None or (record.status == "complete" and not (member_dir / PROBS_FILE).is_file()):
        record = execute(dataclasses.replace(cfg, log_steps=False), member_dir, stop, schedule=choice, seed=seed,
                         lr_multiplier=entry.lr_multiplier, desc=f"{cfg.task.name} [{entry.member} seed {seed}]",
                         eval_splits=("meta",), on_divergence="record", fingerprint=fp, plot_lr=False,
                         extra={"name": entry.name, "member": entry.member, "params": params},
                         finish=_save_member)
    return {**record.summary(), "lr_curve": [[h["epoch"], h["lr_mean"]] for h in record.history]}


def train_pool(cfg: TrainConfig, entries: Sequence[PoolEntry], seed: int, out_dir: Path, stop: StopSignals) -> Pool:
    """Train (or reuse) every base model of ``entries`` with ``seed`` under ``out_dir/members/seed<k>/``;
    the pool of those that did not diverge."""
    total_steps = None
    if any(_needs_resolving(e.params) for e in entries):
        task = build_task(cfg.task, seed, resolve_device(cfg.device))
        total_steps = cfg.epochs * task.steps_per_epoch
    files = []
    for entry in entries:
        member_dir = out_dir / "members" / f"seed{seed}" / entry.member
        rec = train_member(cfg, entry, seed, member_dir, stop, total_steps)
        shown = rec.get("test_accuracy", math.nan)
        print(f"[seed {seed}] {entry.member}: {rec['status']}, meta {rec.get('meta_accuracy', math.nan):.4f}, "
              f"test {shown:.4f}, {rec['wall_time_s']:.1f} s", flush=True)
        if rec["status"] == "complete":
            files.append((entry.member, entry.name, {**rec, "path": str(member_dir / PROBS_FILE)}))
    return Pool.from_files(files)


def bench_pool(bench_dir: str | Path, seed: int, task_name: str | None = None) -> Pool:
    """The pool of a finished ``mlrsnet.bench`` output directory for ``seed``: every completed run of
    ``runs/<schedule>/seed<k>/`` with its saved probabilities (policy = the schedule)."""
    bench_dir = Path(bench_dir)
    if not (bench_dir / "runs").is_dir():
        raise ConfigError(f"{bench_dir} is not an mlrsnet.bench output directory (no runs/ in it); pass "
                          "from_bench=<the bench's out_dir>")
    files = []
    for path in sorted((bench_dir / "runs").glob(f"*/seed{seed}/{PROBS_FILE}")):
        try:
            run = json.loads((path.parent / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if run.get("status") != "complete":
            continue
        info = load_probabilities(path)["info"]
        if task_name is not None and info.get("task") != task_name:
            raise ConfigError(f"{path} holds task {info.get('task')!r}, not {task_name!r}; pass the +task= of "
                              "the benchmark")
        name = f"{run['schedule']}@x{float(run['lr_multiplier']):g}"
        files.append((name, run["schedule"], {"status": "complete", "path": str(path), "seed": seed,
                                               "wall_time_s": run.get("wall_time_s")}))
    if not files:
        have = sorted({int(p.parent.name[len("seed"):]) for p in (bench_dir / "runs").glob(f"*/seed*/{PROBS_FILE}")
                       if p.parent.name[len("seed"):].isdigit()})
        if have:
            raise ConfigError(f"the bench in {bench_dir} has no run of seed {seed}; its runs have seeds {have}: set "
                              f"seeds=[{','.join(map(str, have))}]")
        raise ConfigError(f"no run in {bench_dir} has saved probabilities ({PROBS_FILE}); rerun the benchmark with "
                          "this version of mlrsnet.bench (it saves them after each run of a classification task)")
    pool = Pool.from_files(files)
    for rec, meta, test in zip(pool.records, pool.meta_probs, pool.test_probs, strict=True):
        rec["meta_accuracy"] = float(np.mean(meta.argmax(-1) == pool.meta_labels))
        rec["test_accuracy"] = float(np.mean(test.argmax(-1) == pool.test_labels))
    return pool
