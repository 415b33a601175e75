"""The one inner training loop: task x optimiser x LR driver -> metrics.

Meta-training, transfer and benchmarking all run through :func:`train_loop`, so their numbers are
comparable. An *LR driver* (:class:`mlrsnet.schedules.base.LRDriver`: when the LR is set, how the step is
taken, what happens around evaluation) decides the learning rate.

When a :class:`~mlrsnet.meta.engine.MetaEngine` is given, a meta step runs every ``meta_interval``
iterations between the backward pass and the real step.

Nothing in the step reads a device value on the host: per-step losses and LRs are written into
device buffers and read once per epoch. The same buffers feed the optional divergence :class:`Guard`,
checked once per epoch before evaluation. Their step lines reach ``metrics.jsonl`` at the end of every
epoch, and within a long epoch every :attr:`LoopConfig.flush_seconds` (one device-to-host copy of the
steps since the last flush, the time read on the host), and when a stop signal ends the run.

Pre-emption: when ``stop_requested()`` turns true the loop finishes the current step and raises
:class:`Interrupted` with an :class:`EpochProgress`; passing that progress back in resumes the epoch
exactly where it stopped (its batches are re-drawn from the epoch's starting RNG state and skipped).
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
    """Divergence checks on an epoch's per-step buffers: a non-finite loss or meta loss, or an LR
    outside ``[lr_min, lr_max]``, raises :class:`Diverged` before the epoch is evaluated or logged."""

    lr_min: float = 0.0
    lr_max: float | None = None

    def check(
        self, losses: torch.Tensor, lrs: torch.Tensor, meta_losses: torch.Tensor, meta_mask: torch.Tensor,
        first_step: int, epoch: int,
    ) -> None:
        """Raise :class:`Diverged` for the first bad step of an epoch (one host sync per epoch)."""
        lr_max = math.inf if self.lr_max is None else self.lr_max
        bad_loss = ~torch.isfinite(losses)
        bad_lr = ~torch.isfinite(lrs) | (lrs < self.lr_min) | (lrs > lr_max)
        bad_meta = meta_mask.to(meta_losses.device) & ~torch.isfinite(meta_losses)
        bad = (bad_loss | bad_lr | bad_meta).cpu()
        if not bool(bad.any()):
            return
        i = int(bad.nonzero()[0, 0])
        loss, lr = float(losses[i]), float(lrs[i])
        if bool(bad_loss[i]):
            reason = "non-finite loss"
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


class Interrupted(Exception):
    """Raised by :func:`train_loop` after ``stop_requested()`` turned true: the loop stopped after a whole
    step, with ``epoch`` epochs complete. ``progress`` is the unfinished epoch, or None when the stop
    came right after an epoch ended."""

    def __init__(
        self, epoch: int, global_step: int, history: list[dict], progress: EpochProgress | None
    ) -> None:
        super().__init__(f"training interrupted at step {global_step}")
        self.epoch = epoch
        self.global_step = global_step
        self.history = history
        self.progress = progress


@dataclass
class LoopConfig:
    epochs: int
    meta_interval: int = 1
    grad_clip: float | None = None
    progress: bool = True
    log_steps: bool = True
    eval_splits: tuple[str, ...] = ("test", "meta")
    desc: str = "train"
    guard: Guard | None = None
    flush_seconds: float = 10.0  # at most this long between step-line writes within an epoch


_SHORT = {"accuracy": "test_acc", "perplexity": "test_ppl"}  # progress-bar labels of the test metric


def current_lr(optimizer: torch.optim.Optimizer) -> torch.Tensor | float:
    lr = optimizer.param_groups[0]["lr"]
    return lr.detach() if isinstance(lr, torch.Tensor) else lr


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
    stop_requested: Callable[[], bool] | None = None,
    progress: EpochProgress | None = None,
) -> list[dict]:
    """Train ``model`` on ``task`` for ``cfg.epochs`` epochs; returns the per-epoch records.

    ``on_epoch_end(epoch, global_step, history)`` runs after each epoch is logged. ``stop_requested()``
    is polled after every step and epoch; when true the loop raises :class:`Interrupted`. ``progress``
    (from an earlier :class:`Interrupted`) resumes the unfinished epoch ``start_epoch``; the caller
    restores the model, optimiser, driver and RNG states as they were when it was raised.
    """
    history = list(history or [])
    steps = task.steps_per_epoch
    device = next(model.parameters()).device
    resumed = progress.step if progress is not None and progress.epoch == start_epoch else 0
    bar = tqdm(
        total=cfg.epochs * steps, initial=start_epoch * steps + resumed, desc=cfg.desc,
        disable=not cfg.progress, dynamic_ncols=True, leave=True,
    )
    metric = task.info.metric
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        if progress is not None and progress.epoch == epoch:
            first, elapsed, rng_at_start = progress.step, progress.elapsed, progress.rng_at_start
            losses, lrs, meta_losses = (progress.losses.to(device), progress.lrs.to(device),
                                        progress.meta_losses.to(device))
            meta_mask = progress.meta_mask.clone()
            logged = progress.logged
            batches = _skip_batches(task, epoch, first, rng_at_start)
        else:
            first, elapsed = 0, 0.0
            rng_at_start = task.rng_state() if stop_requested is not None else {}
            losses = torch.zeros(steps, device=device)
            lrs = torch.zeros(steps, device=device, dtype=torch.float64)
            meta_losses = torch.zeros(steps, device=device)
            meta_mask = torch.zeros(steps, dtype=torch.bool)
            logged = 0
            batches = task.train_batches(epoch)
        step_lines = partial(_log_steps, logger if cfg.log_steps else None, losses, lrs, global_step - first, epoch)
        flushed_at = time.perf_counter()
        for i, batch in enumerate(batches, start=first):
            optimizer.zero_grad(set_to_none=True)
            loss = task.train_loss(model, batch)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if engine is not None and global_step % cfg.meta_interval == 0:
                meta_losses[i] = engine.meta_step(batch, loss)
                meta_mask[i] = True
            driver.before_step(loss)
            lrs[i] = current_lr(optimizer)
            driver.step_optimizer(optimizer, partial(task.loss, model, batch))
            task.after_step(model)
            driver.after_step(loss)
            losses[i] = loss.detach()
            global_step += 1
            bar.update(1)
            if stop_requested is not None and stop_requested():
                bar.close()
                logged = step_lines(logged, i + 1)
                raise Interrupted(epoch, global_step, history, EpochProgress(
                    epoch, i + 1, rng_at_start, losses, lrs, meta_losses, meta_mask,
                    elapsed + time.perf_counter() - t0, logged,
                ))
            if time.perf_counter() - flushed_at > cfg.flush_seconds:
                logged, flushed_at = step_lines(logged, i + 1), time.perf_counter()
        if cfg.guard is not None:
            cfg.guard.check(losses, lrs, meta_losses, meta_mask, global_step - steps, epoch + 1)
        record: dict[str, Any] = {"type": "epoch", "epoch": epoch + 1, "step": global_step}
        loss_host = losses.cpu()
        lr_host = lrs.cpu()
        record["train_loss"] = float(loss_host.mean())
        if meta_mask.any():
            record["meta_loss"] = float(meta_losses.cpu()[meta_mask].mean())
        record.update(lr_mean=float(lr_host.mean()), lr_min=float(lr_host.min()), lr_max=float(lr_host.max()),
                      lr_last=float(lr_host[-1]))
        driver.before_eval()
        for split in cfg.eval_splits:
            for k, v in task.evaluate(model, split).items():
                record[f"{split}_{k}"] = v
        driver.after_eval()
        record["epoch_time"] = elapsed + time.perf_counter() - t0
        if logger is not None:
            step_lines(logged, steps)
            logger.log(record)
        history.append(record)
        driver.after_epoch(record)
        shown = record.get(f"test_{metric}", math.nan)
        bar.set_postfix(epoch=epoch + 1, loss=f"{record['train_loss']:.3f}", lr=f"{record['lr_last']:.3g}",
                        **{_SHORT.get(metric, f"test_{metric}"): f"{shown:.4g}"})
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, global_step, history)
        if stop_requested is not None and stop_requested() and epoch + 1 < cfg.epochs:
            bar.close()
            raise Interrupted(epoch + 1, global_step, history, None)
    bar.close()
    return history


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
