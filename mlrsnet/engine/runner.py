"""The one runner: every command trains every run through :func:`execute`, so every run gets the same run
directory, lock, signal handling, resume and record.

:func:`execute` locks the run directory (:func:`mlrsnet.rundir.open_run_dir`), continues the run from its
``run_state.pt`` when there is one (``resume``, :mod:`mlrsnet.engine.resume`), builds it
(:func:`mlrsnet.engine.build.build_run`), steps the :class:`~mlrsnet.engine.loop.Trainer` to the end, saving the
run state every ``save_every`` epochs, and writes the :class:`RunRecord` as ``summary.json``:

- on SIGTERM / SIGUSR1 / SIGUSR2 / a first Ctrl-C (:class:`~mlrsnet.engine.resume.StopSignals`, held by the command
  for all its runs), the run saves after the current step and :class:`~mlrsnet.errors.RunInterrupted` (exit code 75)
  ends the command; the same command resumes it, with the numbers an uninterrupted run would have produced;
- on a divergence, the guard's rule (``guard.on_divergence``): a rollback to the last saved state with a lower LR,
  or a stop: :class:`~mlrsnet.errors.DivergenceError` (``on_divergence="raise"``, exit code 3), or a ``diverged``
  record (``"record"``: a benchmark goes on with its other runs).

A record carries the run's fingerprint (:mod:`mlrsnet.engine.fingerprint`); :func:`finished` returns the record of
a run directory that holds a finished run with a given fingerprint, so that a command reruns nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlrsnet.checkpoint import SNAPSHOT_DIR
from mlrsnet.engine.build import Run, build_run
from mlrsnet.engine.config import RunConfig, ScheduleChoice, TrainConfig, schedule_choice
from mlrsnet.engine.figures import save_lr_schedule, swap_steps
from mlrsnet.engine.fingerprint import config_dict
from mlrsnet.engine.log import RunLogger, TensorBoardSink, WandbSink, dump_config, read_metrics
from mlrsnet.engine.loop import Diverged, Trainer
from mlrsnet.engine.resume import RUN_STATE, Checkpointer, StopSignals, loop_position, previous_state
from mlrsnet.errors import DivergenceError, RunInterrupted
from mlrsnet.rundir import open_run_dir

__all__ = ["SUMMARY", "RunRecord", "execute", "finished", "read_record", "stopped_between_runs"]

SUMMARY = "summary.json"
# What a run writes in its directory besides metrics.jsonl and config.yaml (which a fresh run overwrites): a
# fresh start removes an earlier run's, so nothing of it is mistaken for this run's (plots, bundles, tables).
RUN_OUTPUTS = ("run_state.pt", SUMMARY, "lr_schedule.csv", "lr_schedule.png", "mlrsnet.pt", "mlrsnet_bundle.pt",
               "probs.npz")


@dataclass
class RunRecord:
    """What a finished (or diverged) run leaves: its identity, its final and best metrics, its wall time and
    what it recorded about its schedule (``info``); ``history`` holds its epoch records (not in summary.json:
    they are in metrics.jsonl)."""

    status: str
    task: str
    schedule: str
    seed: int
    epochs: int
    metric: str
    higher_is_better: bool
    lr_multiplier: float = 1.0
    steps: int = 0
    initial_loss: float = math.nan
    final_test: float | None = None
    best_test: float | None = None
    final_meta: float | None = None
    best_meta: float | None = None
    final_train_loss: float | None = None
    lr_mean: float | None = None
    wall_time_s: float = 0.0
    rollbacks: int = 0
    run_dir: str = ""
    fingerprint: str = ""
    error: str | None = None
    info: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    @classmethod
    def of(cls, run: Run, history: list[dict], status: str = "complete", **kw: Any) -> RunRecord:
        """The record of ``run`` after ``history``: final and best test and meta metrics, the mean LR."""
        info, metric = run.task.info, run.task.info.metric
        pick = max if info.higher_is_better else min

        def final_best(split: str) -> tuple[float | None, float | None]:
            values = [h[f"{split}_{metric}"] for h in history if f"{split}_{metric}" in h]
            return (values[-1], pick(values)) if values else (None, None)

        final_test, best_test = final_best("test")
        final_meta, best_meta = final_best("meta")
        return cls(status=status, task=info.name, schedule=run.schedule, seed=run.seed, epochs=run.cfg.epochs,
                   metric=metric, higher_is_better=info.higher_is_better, steps=history[-1]["step"] if history else 0,
                   initial_loss=run.l0, final_test=final_test, best_test=best_test, final_meta=final_meta,
                   best_meta=best_meta, final_train_loss=history[-1]["train_loss"] if history else None,
                   lr_mean=sum(h["lr_mean"] for h in history) / len(history) if history else None,
                   info={**run.info, **run.driver.info()}, history=list(history), **kw)

    def summary(self) -> dict[str, Any]:
        """``summary.json``: the record without its history, the schedule's info at the top level, and the metrics
        under their full names (``final_test_accuracy``, ``best_meta_perplexity``...)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("history", "info")}
        for key in ("final_test", "best_test", "final_meta", "best_meta"):
            out[f"{key}_{self.metric}"] = out.pop(key)
        return {**self.info, **out}

    @classmethod
    def from_summary(cls, summary: dict[str, Any], history: list[dict] | None = None) -> RunRecord:
        metric = summary["metric"]
        names = {f.name for f in cls.__dataclass_fields__.values()}
        values = {k: v for k, v in summary.items() if k in names}
        for key in ("final_test", "best_test", "final_meta", "best_meta"):
            values[key] = summary.get(f"{key}_{metric}")
        full = {f"{key}_{metric}" for key in ("final_test", "best_test", "final_meta", "best_meta")}
        info = {k: v for k, v in summary.items() if k not in names and k not in full}
        return cls(**values, info=info, history=list(history or []))


def read_record(run_dir: str | Path) -> RunRecord | None:
    """The record of a run directory (its ``summary.json`` and the epoch records of its ``metrics.jsonl``), or
    None where it holds no readable one."""
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / SUMMARY).read_text())
        history = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "epoch"]
        return RunRecord.from_summary(summary, history)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def finished(run_dir: str | Path, fingerprint: str) -> RunRecord | None:
    """The record of the finished run in ``run_dir`` (complete or diverged) when its fingerprint is
    ``fingerprint``; None otherwise (no run, an unfinished one, or one of another config)."""
    record = read_record(run_dir)
    if record is None or record.fingerprint != fingerprint or record.status not in ("complete", "diverged"):
        return None
    return record


def _clear_outputs(run_dir: Path) -> None:
    """Remove an earlier run's outputs from ``run_dir`` (``resume=false`` into a used directory)."""
    shutil.rmtree(run_dir / SNAPSHOT_DIR, ignore_errors=True)
    for name in RUN_OUTPUTS:
        (run_dir / name).unlink(missing_ok=True)


def stopped_between_runs(stop: StopSignals, run_dir: str | Path) -> None:
    """For a run that holds its own signals inside a command of many: a signal that came during its last step
    let it finish; the command stops now, before its next run (exit code 75; the same command goes on)."""
    if stop.signum is not None:
        raise RunInterrupted(f"stopped by {stop.name} after {run_dir} finished; rerun the same command to continue")


def execute(
    cfg: RunConfig, run_dir: str | Path, stop: StopSignals, *, schedule: str | ScheduleChoice | None = None,
    seed: int | None = None, lr_multiplier: float = 1.0, desc: str | None = None,
    eval_splits: tuple[str, ...] = ("test", "meta"), on_divergence: str = "raise", config_yaml: str | None = None,
    fingerprint: str = "", gamma_key: str = "schedule.gamma", plot_lr: bool = True, extra: dict | None = None,
    finish: Callable[[Run, RunRecord, Path, RunLogger], None] | None = None,
) -> RunRecord:
    """Train one run of ``cfg`` in ``run_dir`` (the module docstring) and return its record. ``schedule``,
    ``seed`` and ``lr_multiplier`` choose the run (:func:`~mlrsnet.engine.build.build_run`); ``extra`` joins its
    record's info; ``finish(run, record, run_dir, logger)`` writes what a command keeps besides the record
    (MLR-SNet's bundle, per-example probabilities...) before ``summary.json`` is written."""
    with open_run_dir(run_dir) as locked:
        if stop.signum is not None:  # a signal between two runs of a command: start no new one
            raise RunInterrupted(f"stopped by {stop.name} before {locked} started; rerun the same command to "
                                 "continue")
        return _execute(cfg, locked, stop, schedule, seed, lr_multiplier, desc, eval_splits, on_divergence,
                        config_yaml, fingerprint, gamma_key, plot_lr, dict(extra or {}), finish)


def _execute(cfg: RunConfig, run_dir: Path, stop: StopSignals, schedule: str | ScheduleChoice | None,
             seed: int | None, lr_multiplier: float, desc: str | None, eval_splits: tuple[str, ...],
             on_divergence: str, config_yaml: str | None, fingerprint: str, gamma_key: str, plot_lr: bool,
             extra: dict, finish: Callable[[Run, RunRecord, Path, RunLogger], None] | None) -> RunRecord:
    # The config this run trains with: the command's, with the run's own schedule and seed.
    effective = cfg
    if isinstance(cfg, TrainConfig):
        effective = dataclasses.replace(cfg, schedule=schedule if isinstance(schedule, ScheduleChoice)
                                        else schedule_choice(cfg, schedule))
    if seed is not None:
        effective = dataclasses.replace(effective, seed=seed)
    plain = config_dict(effective)
    saved = previous_state(cfg, plain, run_dir / RUN_STATE)
    run = build_run(cfg, seed=seed, schedule=schedule, lr_multiplier=lr_multiplier, gamma_key=gamma_key,
                    l0=None if saved is None else float(saved["initial_loss"]))
    task = run.task
    logger = RunLogger(run_dir, config_yaml=config_yaml or dump_config(plain),
                       resume_at=None if saved is None else saved["metrics_bytes"])
    if isinstance(cfg, TrainConfig) and cfg.logger.name == "wandb":
        logger.sinks.append(WandbSink(run_dir, plain, asdict(cfg.logger),
                                      run_id=None if saved is None else saved["wandb_id"]))
    if isinstance(cfg, TrainConfig) and cfg.logger.name == "tensorboard":
        logger.sinks.append(TensorBoardSink(run_dir, plain, asdict(cfg.logger),
                                            resume_step=None if saved is None else int(saved["global_step"])))
    label = desc or f"{task.info.name} [{run.schedule}" + ("" if lr_multiplier == 1.0 else f" x{lr_multiplier:g}") + \
        ("" if seed is None else f" seed {run.seed}") + "]"
    loop_cfg = run.loop_config(label, eval_splits=eval_splits)
    ckpt = Checkpointer(run_dir, cfg, plain, run, logger, saved)
    trainer = Trainer(task, run.train_model, run.optimizer, run.driver, loop_cfg, logger, run.engine,
                      on_epoch_end=ckpt.on_epoch_end)
    record_kw = {"lr_multiplier": lr_multiplier, "run_dir": str(run_dir), "fingerprint": fingerprint}
    if saved is None:
        _clear_outputs(run_dir)
        trainer.init()
        ckpt.snapshot(0)
        ckpt.save(trainer.position())
    else:
        run.load_state_dict(saved["training"])
        trainer.init(**loop_position(saved))
        print(f"resuming {run_dir} after step {saved['global_step']} ({saved['epoch']} epochs complete)", flush=True)
    try:
        while not trainer.done:
            try:
                trainer.step()
            except Diverged as d:
                trainer.close()
                trainer.init(**ckpt.recover(d))
                continue
            if stop.requested() and not trainer.done:
                ckpt.save(trainer.position())
                trainer.close()
                logger.close()
                stop.forward()
                raise RunInterrupted(
                    f"stopped by {stop.name} after step {trainer.global_step} ({trainer.epochs_done} epochs "
                    f"complete); state saved in {ckpt.path}: rerun the same command to continue"
                    + (f" (hydra.run.dir={run_dir})" if isinstance(cfg, TrainConfig) else ""))
    except DivergenceError as e:
        record = RunRecord.of(run, trainer.history, "diverged", error=str(e), wall_time_s=ckpt.wall_time(),
                              rollbacks=ckpt.rollbacks, **record_kw)
        record.info.update(extra)
        logger.summary(record.summary())
        logger.close()
        if on_divergence == "raise":
            raise
        return record
    finally:
        trainer.close()
    record = RunRecord.of(run, trainer.history, wall_time_s=ckpt.wall_time(), rollbacks=ckpt.rollbacks,
                          **record_kw)
    record.info.update(extra)
    if plot_lr:
        steps = [(r["step"], r["lr"]) for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "step"]
        if steps:
            save_lr_schedule(run_dir, steps, f"{task.info.name}: {run.schedule} LR (seed {run.seed})",
                             swap_steps(record.summary()))
            logger.image("lr_schedule", run_dir / "lr_schedule.png")
    if finish is not None:
        finish(run, record, run_dir, logger)
    logger.summary(record.summary())
    logger.close()
    return record
