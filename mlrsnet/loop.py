"""The one inner training loop: task x optimiser x LR driver -> metrics.

Meta-training, transfer and benchmarking all run through :func:`train_loop`, so their numbers are
comparable. An *LR driver* decides the learning rate:

- ``before_step(loss)`` runs after ``loss.backward()`` and before ``optimizer.step()``; MLR-SNet sets
  the LR of *this* step from *this* step's loss here, as in the paper;
- ``after_step(loss)`` runs after ``optimizer.step()``; torch-style schedulers advance here;
- ``after_epoch(metrics)`` runs after evaluation (e.g. ReduceLROnPlateau).

When a :class:`~mlrsnet.meta.engine.MetaEngine` is given, a meta step runs every ``meta_interval``
iterations between the backward pass and the real step.

Nothing in the step reads a device value on the host: per-step losses and LRs are written into
device buffers and read once per epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from mlrsnet.log import RunLogger
from mlrsnet.net import MLRSNet
from mlrsnet.tasks.base import Task


class LRDriver:
    """Base LR driver: leaves the optimiser's LR alone (a fixed LR)."""

    name = "fixed"

    def before_step(self, loss: torch.Tensor) -> None:
        """Set the LR for the step about to be taken."""

    def after_step(self, loss: torch.Tensor) -> None:
        """Advance after ``optimizer.step()``."""

    def after_epoch(self, metrics: dict[str, Any]) -> None:
        """React to end-of-epoch metrics."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`."""


def set_lr(
    optimizer: torch.optim.Optimizer, lr: torch.Tensor | float, scales: list[float] | None = None
) -> None:
    """Set every param group's LR to ``lr`` (times the group's scale).

    A tensor LR stays a tensor for groups whose step reads it on the device (``fused`` or
    ``capturable`` optimisers; :func:`mlrsnet.utils.build_optimizer` picks ``fused`` on CUDA), so the
    step needs no host sync. Every other torch step turns a tensor LR into a Python number itself
    (``.item()``), so it is converted once here instead."""
    for i, group in enumerate(optimizer.param_groups):
        value = lr if scales is None else lr * scales[i]
        if isinstance(value, torch.Tensor) and not (group.get("fused") or group.get("capturable")):
            value = float(value)
        group["lr"] = value


class MLRSNetDriver(LRDriver):
    """LR from an MLR-SNet: lr_t = MLR-SNet(loss_t / loss_scale), state carried and detached."""

    name = "mlrsnet"

    def __init__(self, net: MLRSNet, optimizer: torch.optim.Optimizer, loss_scale: float = 1.0) -> None:
        self.net = net
        self.optimizer = optimizer
        self.loss_scale = loss_scale

    def before_step(self, loss: torch.Tensor) -> None:
        set_lr(self.optimizer, self.net.step(loss.detach() / self.loss_scale))

    def state_dict(self) -> dict:
        return {"state": self.net.state}

    def load_state_dict(self, state: dict) -> None:
        self.net.state = state["state"]


class TorchSchedulerDriver(LRDriver):
    """Adapter for ``torch.optim.lr_scheduler`` schedulers, stepped once per iteration.
    ``ReduceLROnPlateau`` is stepped once per epoch on ``metric_key`` instead."""

    def __init__(self, scheduler: Any, name: str = "torch", metric_key: str = "train_loss") -> None:
        self.scheduler = scheduler
        self.name = name
        self.metric_key = metric_key
        self.per_epoch = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def after_step(self, loss: torch.Tensor) -> None:
        if not self.per_epoch:
            self.scheduler.step()

    def after_epoch(self, metrics: dict[str, Any]) -> None:
        if self.per_epoch:
            self.scheduler.step(metrics[self.metric_key])

    def state_dict(self) -> dict:
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])


@dataclass
class LoopConfig:
    epochs: int
    meta_interval: int = 1
    grad_clip: float | None = None
    progress: bool = True
    log_steps: bool = True
    eval_splits: tuple[str, ...] = ("test", "meta")
    desc: str = "train"


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
) -> list[dict]:
    """Train ``model`` on ``task`` for ``cfg.epochs`` epochs; returns the per-epoch records."""
    history = list(history or [])
    steps = task.steps_per_epoch
    device = next(model.parameters()).device
    bar = tqdm(
        total=cfg.epochs * steps, initial=start_epoch * steps, desc=cfg.desc, disable=not cfg.progress,
        dynamic_ncols=True, leave=True,
    )
    metric = task.info.metric
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        losses = torch.zeros(steps, device=device)
        lrs = torch.zeros(steps, device=device, dtype=torch.float64)
        meta_losses = torch.zeros(steps, device=device)
        meta_mask = torch.zeros(steps, dtype=torch.bool)
        for i, batch in enumerate(task.train_batches(epoch)):
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
            optimizer.step()
            driver.after_step(loss)
            losses[i] = loss.detach()
            global_step += 1
            bar.update(1)
        record: dict[str, Any] = {"type": "epoch", "epoch": epoch + 1, "step": global_step}
        loss_host = losses.cpu()
        lr_host = lrs.cpu()
        record["train_loss"] = float(loss_host.mean())
        if meta_mask.any():
            record["meta_loss"] = float(meta_losses.cpu()[meta_mask].mean())
        record.update(lr_mean=float(lr_host.mean()), lr_min=float(lr_host.min()), lr_max=float(lr_host.max()),
                      lr_last=float(lr_host[-1]))
        for split in cfg.eval_splits:
            for k, v in task.evaluate(model, split).items():
                record[f"{split}_{k}"] = v
        record["epoch_time"] = time.perf_counter() - t0
        if logger is not None:
            if cfg.log_steps:
                first = global_step - steps
                logger.log_many([
                    {"type": "step", "step": first + j, "epoch": epoch + 1, "lr": float(lr_host[j]),
                     "loss": float(loss_host[j])}
                    for j in range(steps)
                ])
            logger.log(record)
        history.append(record)
        driver.after_epoch(record)
        shown = record.get(f"test_{metric}", math.nan)
        bar.set_postfix(epoch=epoch + 1, loss=f"{record['train_loss']:.3f}", lr=f"{record['lr_last']:.3g}",
                        **{metric[:4]: f"{shown:.4g}"})
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, global_step, history)
    bar.close()
    return history
