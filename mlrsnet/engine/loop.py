"""The one inner training loop: task x optimiser x LR driver -> metrics, as a steppable :class:`Trainer`.

Meta-training, transfer, benchmarking, LREnsemble and the RL environment all train through it, so their
numbers are comparable. After learned_optimization's truncated step, the trainer has a small interface:
:meth:`Trainer.init` (where to start: a fresh run, or a saved position), :meth:`Trainer.step` (one training
step; after an epoch's last step it evaluates and returns the epoch's record) and :meth:`Trainer.epoch` (the
rest of the current epoch). :func:`train_loop` is a thin driver over it; :mod:`mlrsnet.engine.runner` drives it
with saving and signals; the RL environment steps it between its decisions.

An *LR driver* (:class:`mlrsnet.schedules.base.LRDriver`: when the LR is set, how the step is taken, what
happens around evaluation) decides the learning rate. When a :class:`~mlrsnet.meta.engine.MetaEngine` is given,
a meta step runs every ``meta_interval`` iterations (counted over the run, or within each epoch:
``meta_counter``, :func:`mlrsnet.meta.engine.meta_update_due`) between the backward pass and the real step.

Nothing in the step reads a device value on the host: per-step losses and LRs are written into device buffers
and read once per epoch. The same buffers feed the optional divergence :class:`Guard`, checked once per epoch
before evaluation. Their step lines reach ``metrics.jsonl`` at the end of every epoch, within a long epoch
every :attr:`LoopConfig.flush_seconds` (one device-to-host copy of the steps since the last flush), and when
the trainer's position is saved (:meth:`Trainer.position`).

A saved position (an :class:`EpochProgress` for an unfinished epoch) resumes the epoch exactly where it stopped:
its batches are re-drawn from the epoch's starting RNG state and skipped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from mlrsnet.engine.log import RunLogger
from mlrsnet.errors import DivergenceError
from mlrsnet.meta.engine import meta_update_due
from mlrsnet.schedules.base import LRDriver
from mlrsnet.tasks.base import Task


class Diverged(DivergenceError):
    """Training produced a non-finite loss or an LR outside the guard's bounds; names the first bad step
    (numbered as the ``step`` records of metrics.jsonl)."""

    def __init__(self, step: int, epoch: int, loss: float, lr: float, reason: str) -> None:
        self.step, self.epoch, self.loss, self.lr, self.reason = step, epoch, loss, lr, reason
        super().__init__(
            f"training diverged at step {step} (epoch {epoch}): {reason}, loss {loss:.4g}, lr {lr:.4g}; "
            "lower the learning rate"
        )


@dataclass
class Guard:
    """Divergence checks on an epoch's per-step buffers: a non-finite loss or meta loss, a finite loss above
    ``loss_max`` (an explosion: the run's ``guard.max_loss_factor`` x L0), or an LR outside ``[lr_min, lr_max]``,
    raises :class:`Diverged` before the epoch is evaluated or logged."""

    lr_min: float = 0.0
    lr_max: float | None = None
    loss_max: float | None = None

    def check(
        self, losses: torch.Tensor, lrs: torch.Tensor, meta_losses: torch.Tensor, meta_mask: torch.Tensor,
        first_step: int, epoch: int,
    ) -> None:
        """Raise :class:`Diverged` for the first bad step of an epoch (one host sync per epoch)."""
        lr_max = math.inf if self.lr_max is None else self.lr_max
        loss_max = math.inf if self.loss_max is None else self.loss_max
        bad_loss = ~torch.isfinite(losses) | (losses > loss_max)
        bad_lr = ~torch.isfinite(lrs) | (lrs < self.lr_min) | (lrs > lr_max)
        bad_meta = meta_mask.to(meta_losses.device) & ~torch.isfinite(meta_losses)
        bad = (bad_loss | bad_lr | bad_meta).cpu()
        if not bool(bad.any()):
            return
        i = int(bad.nonzero()[0, 0])
        loss, lr = float(losses[i]), float(lrs[i])
        if bool(bad_loss[i]):
            reason = "non-finite loss" if not math.isfinite(loss) else f"loss above the guard's bound {loss_max:.4g}"
        elif not math.isfinite(lr):
            reason = "non-finite learning rate"
        elif bool(bad_lr[i]):
            reason = f"learning rate outside the guard's bounds [{self.lr_min:g}, {lr_max:g}]"
        else:
            reason = f"non-finite meta loss {float(meta_losses[i]):.4g}"
        raise Diverged(first_step + i, epoch, loss, lr, reason)


@dataclass
class EpochProgress:
    """An unfinished epoch: enough to resume it at the step where it stopped."""

    epoch: int  # 0-based index of the unfinished epoch
    step: int  # steps of it already taken
    rng_at_start: dict  # task.rng_state() before the epoch's first batch was drawn
    losses: torch.Tensor
    lrs: torch.Tensor
    meta_losses: torch.Tensor
    meta_mask: torch.Tensor
    elapsed: float  # seconds already spent in this epoch
    logged: int = 0  # steps of it whose lines are already in metrics.jsonl

    def state_dict(self) -> dict:
        """Plain-dict form, tensors on the CPU (for checkpoints)."""
        return {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in asdict(self).items()}

    @classmethod
    def from_state_dict(cls, state: dict) -> EpochProgress:
        return cls(**state)


@dataclass
class LoopConfig:
    epochs: int
    meta_interval: int = 1
    meta_counter: str = "global"  # how meta_interval counts (mlrsnet.meta.engine.meta_update_due)
    grad_clip: float | None = None
    progress: bool = True  # a progress bar
    epoch_lines: bool = False  # one line per epoch on stdout instead (a log that is not a terminal)
    log_steps: bool = True
    eval_splits: tuple[str, ...] = ("test", "meta")
    desc: str = "train"
    guard: Guard | None = None
    flush_seconds: float = 10.0  # at most this long between step-line writes within an epoch


_SHORT = {"accuracy": "test_acc", "perplexity": "test_ppl"}  # progress-bar labels of the test metric


def current_lr(optimizer: torch.optim.Optimizer) -> torch.Tensor | float:
    lr = optimizer.param_groups[0]["lr"]
    return lr.detach() if isinstance(lr, torch.Tensor) else lr


class _Epoch:
    """The state of the epoch in progress."""

    def __init__(self, index: int, first: int, elapsed: float, rng_at_start: dict, losses: torch.Tensor,
                 lrs: torch.Tensor, meta_losses: torch.Tensor, meta_mask: torch.Tensor, logged: int,
                 batches: Iterator[tuple]) -> None:
        self.index, self.i, self.elapsed, self.rng_at_start = index, first, elapsed, rng_at_start
        self.losses, self.lrs, self.meta_losses, self.meta_mask = losses, lrs, meta_losses, meta_mask
        self.logged, self.batches = logged, batches
        self.t0 = self.flushed_at = time.perf_counter()


class Trainer:
    """Trains ``model`` on ``task`` with ``optimizer`` and the LR ``driver`` for ``cfg.epochs`` epochs, one
    step at a time (the module docstring). ``on_epoch_end(epoch, global_step, history)`` runs after each
    epoch is evaluated and logged. The caller restores the model, optimiser, driver and RNG states of a saved
    position before :meth:`init` continues from it."""

    def __init__(self, task: Task, model: nn.Module, optimizer: torch.optim.Optimizer, driver: LRDriver,
                 cfg: LoopConfig, logger: RunLogger | None = None, engine: Any = None,
                 on_epoch_end: Callable[[int, int, list[dict]], None] | None = None) -> None:
        self.task, self.model, self.optimizer, self.driver, self.cfg = task, model, optimizer, driver, cfg
        self.logger, self.engine, self.on_epoch_end = logger, engine, on_epoch_end
        self.steps = task.steps_per_epoch
        self.device = next(model.parameters()).device
        self.epochs_done, self.global_step, self.history = 0, 0, []
        self._open: _Epoch | None = None
        self._progress: EpochProgress | None = None
        self._bar: Any = None

    def init(self, start_epoch: int = 0, global_step: int = 0, history: list[dict] | None = None,
             progress: EpochProgress | None = None) -> Trainer:
        """Start at epoch ``start_epoch`` (0-based) after ``global_step`` steps with the epoch records
        ``history``; ``progress`` resumes the unfinished epoch ``start_epoch``."""
        self.epochs_done, self.global_step, self.history = start_epoch, global_step, list(history or [])
        self._progress = progress if progress is not None and progress.epoch == start_epoch else None
        self._open = None
        resumed = self._progress.step if self._progress is not None else 0
        self._bar = tqdm(total=self.cfg.epochs * self.steps, initial=start_epoch * self.steps + resumed,
                         desc=self.cfg.desc, disable=not self.cfg.progress, dynamic_ncols=True, leave=True)
        return self

    @property
    def done(self) -> bool:
        return self.epochs_done >= self.cfg.epochs

    def _begin_epoch(self) -> _Epoch:
        epoch, steps, task, device = self.epochs_done, self.steps, self.task, self.device
        self.model.train()
        progress, self._progress = self._progress, None
        if progress is not None:
            return _Epoch(epoch, progress.step, progress.elapsed, progress.rng_at_start, progress.losses.to(device),
                          progress.lrs.to(device), progress.meta_losses.to(device), progress.meta_mask.clone(),
                          progress.logged, _skip_batches(task, epoch, progress.step, progress.rng_at_start))
        rng_at_start = task.rng_state()
        return _Epoch(epoch, 0, 0.0, rng_at_start, torch.zeros(steps, device=device),
                      torch.zeros(steps, device=device, dtype=torch.float64), torch.zeros(steps, device=device),
                      torch.zeros(steps, dtype=torch.bool), 0, task.train_batches(epoch))

    def _flush(self, ep: _Epoch, stop: int) -> None:
        """Write the step lines of ``ep``'s steps not yet logged, up to ``stop``."""
        first_step = self.global_step - ep.i
        ep.logged = _log_steps(self.logger if self.cfg.log_steps else None, ep.losses, ep.lrs, first_step,
                               ep.index, ep.logged, stop)

    def step(self) -> dict | None:
        """One training step of the current epoch; after the epoch's last step, the epoch's evaluation: returns
        its record (None after any other step)."""
        if self.done:
            raise RuntimeError("the run is complete; there is no step left")
        if self._open is None:
            self._open = self._begin_epoch()
        ep, cfg, model, optimizer, driver = self._open, self.cfg, self.model, self.optimizer, self.driver
        if ep.i < self.steps:
            i, batch = ep.i, next(ep.batches)
            optimizer.zero_grad(set_to_none=True)
            loss = self.task.train_loss(model, batch)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if self.engine is not None and meta_update_due(cfg.meta_counter, cfg.meta_interval, self.global_step, i):
                ep.meta_losses[i] = self.engine.meta_step(batch, loss)
                ep.meta_mask[i] = True
            driver.before_step(loss)
            ep.lrs[i] = current_lr(optimizer)
            driver.step_optimizer(optimizer, partial(self.task.loss, model, batch))
            self.task.after_step(model)
            driver.after_step(loss)
            ep.losses[i] = loss.detach()
            ep.i += 1
            self.global_step += 1
            self._bar.update(1)
            if time.perf_counter() - ep.flushed_at > cfg.flush_seconds:
                self._flush(ep, ep.i)
                ep.flushed_at = time.perf_counter()
        return self._end_epoch() if ep.i >= self.steps else None

    def epoch(self) -> dict:
        """The rest of the current epoch: its steps, then its evaluation; returns its record."""
        while (record := self.step()) is None:
            pass
        return record

    def _end_epoch(self) -> dict:
        ep, cfg, task, driver = self._open, self.cfg, self.task, self.driver
        assert ep is not None
        steps, epoch = self.steps, ep.index
        if cfg.guard is not None:
            cfg.guard.check(ep.losses, ep.lrs, ep.meta_losses, ep.meta_mask, self.global_step - steps, epoch + 1)
        record: dict[str, Any] = {"type": "epoch", "epoch": epoch + 1, "step": self.global_step}
        loss_host = ep.losses.cpu()
        lr_host = ep.lrs.cpu()
        record["train_loss"] = float(loss_host.mean())
        if ep.meta_mask.any():
            record["meta_loss"] = float(ep.meta_losses.cpu()[ep.meta_mask].mean())
        record.update(lr_mean=float(lr_host.mean()), lr_min=float(lr_host.min()), lr_max=float(lr_host.max()),
                      lr_last=float(lr_host[-1]))
        driver.before_eval()
        for split in cfg.eval_splits:
            for k, v in task.evaluate(self.model, split).items():
                record[f"{split}_{k}"] = v
        driver.after_eval()
        record["epoch_time"] = ep.elapsed + time.perf_counter() - ep.t0
        if self.logger is not None:
            self._flush(ep, steps)
            self.logger.log(record)
        self.history.append(record)
        driver.after_epoch(record)
        metric = task.info.metric
        shown = record.get(f"test_{metric}", math.nan)
        label = _SHORT.get(metric, f"test_{metric}")
        self._bar.set_postfix(epoch=epoch + 1, loss=f"{record['train_loss']:.3f}", lr=f"{record['lr_last']:.3g}",
                              **{label: f"{shown:.4g}"})
        if cfg.epoch_lines:
            print(f"{cfg.desc} epoch {epoch + 1}/{cfg.epochs}: loss {record['train_loss']:.4f}, lr "
                  f"{record['lr_last']:.4g}" + ("" if math.isnan(shown) else f", {label} {shown:.4g}")
                  + f" ({record['epoch_time']:.1f} s)", flush=True)
        self._open = None
        self.epochs_done += 1
        if self.done:
            self._bar.close()
        if self.on_epoch_end is not None:
            self.on_epoch_end(self.epochs_done, self.global_step, self.history)
        return record

    def position(self) -> dict:
        """Where the trainer stands, as :meth:`init` takes it (``start_epoch``, ``global_step``, ``history``,
        ``progress``); the step lines of the unfinished epoch are written first."""
        ep = self._open
        progress = None
        if ep is not None and ep.i > 0:
            self._flush(ep, ep.i)
            progress = EpochProgress(ep.index, ep.i, ep.rng_at_start, ep.losses, ep.lrs, ep.meta_losses,
                                     ep.meta_mask, ep.elapsed + time.perf_counter() - ep.t0, ep.logged)
        elif self._progress is not None:
            progress = self._progress
        return {"start_epoch": self.epochs_done, "global_step": self.global_step, "history": list(self.history),
                "progress": progress}

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def train_loop(
    task: Task,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    driver: LRDriver,
    cfg: LoopConfig,
    logger: RunLogger | None = None,
    engine: Any = None,
    start_epoch: int = 0,
    global_step: int = 0,
    history: list[dict] | None = None,
    on_epoch_end: Callable[[int, int, list[dict]], None] | None = None,
    progress: EpochProgress | None = None,
) -> list[dict]:
    """Train ``model`` on ``task`` for ``cfg.epochs`` epochs (a :class:`Trainer` run to its end); returns the
    per-epoch records. ``progress`` (a saved position) resumes the unfinished epoch ``start_epoch``."""
    trainer = Trainer(task, model, optimizer, driver, cfg, logger, engine, on_epoch_end)
    trainer.init(start_epoch, global_step, history, progress)
    try:
        while not trainer.done:
            trainer.step()
    finally:
        trainer.close()
    return trainer.history


def _log_steps(logger: RunLogger | None, losses: torch.Tensor, lrs: torch.Tensor, first_step: int, epoch: int,
               start: int, stop: int) -> int:
    """Write the step lines of an epoch's steps ``start..stop-1`` (one device-to-host copy); returns
    ``stop``, the number of its steps logged so far."""
    if logger is not None and stop > start:
        loss_host, lr_host = losses[start:stop].cpu(), lrs[start:stop].cpu()
        logger.log_many([
            {"type": "step", "step": first_step + j, "epoch": epoch + 1, "lr": float(lr_host[j - start]),
             "loss": float(loss_host[j - start])}
            for j in range(start, stop)
        ])
    return stop


def _skip_batches(task: Task, epoch: int, done: int, rng_at_start: dict) -> Iterator[tuple]:
    """The batches of ``epoch`` after the first ``done``, drawn exactly as an uninterrupted epoch would
    draw them: the task's generators are rewound to the epoch's start, ``done`` batches are drawn and
    dropped, and every RNG state is then put back to what the caller restored."""
    now, cpu_rng = task.rng_state(), torch.get_rng_state()
    task.set_rng_state(rng_at_start)
    batches = task.train_batches(epoch)
    for _ in range(done):
        next(batches)
    task.set_rng_state(now)
    torch.set_rng_state(cpu_rng)
    return batches
