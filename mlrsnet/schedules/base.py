"""The LR-driver protocol of the one training loop (:func:`mlrsnet.engine.loop.train_loop`) and its simplest
adapters: a fixed LR (:class:`LRDriver` itself) and any ``torch.optim.lr_scheduler`` scheduler.

A driver decides the learning rate of each step:

- ``before_step(loss)`` runs after ``loss.backward()`` and before ``optimizer.step()``; MLR-SNet sets
  the LR of *this* step from *this* step's loss here, as in the paper;
- ``after_step(loss)`` runs after ``optimizer.step()``; torch-style schedulers advance here;
- ``after_epoch(metrics)`` runs after evaluation (e.g. ReduceLROnPlateau);
- ``step_optimizer(optimizer, closure)`` takes the step (``optimizer.step()``; a line search calls
  ``closure()``, the loss of the current batch, for its trial steps);
- ``before_eval()`` / ``after_eval()`` bracket the evaluation (schedule-free optimisers move the model to
  their averaged point and back).

The adapters of every other schedule live in :mod:`mlrsnet.schedules.drivers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["LRDriver", "TorchSchedulerDriver", "set_lr"]


class LRDriver:
    """Base LR driver: leaves the optimiser's LR alone (a fixed LR)."""

    name = "fixed"

    def before_step(self, loss: torch.Tensor) -> None:
        """Set the LR for the step about to be taken."""

    def after_step(self, loss: torch.Tensor) -> None:
        """Advance after ``optimizer.step()``."""

    def after_epoch(self, metrics: dict[str, Any]) -> None:
        """React to end-of-epoch metrics."""

    def step_optimizer(self, optimizer: torch.optim.Optimizer, closure: Callable[[], torch.Tensor]) -> None:
        """Take the optimiser step. ``closure()`` returns the loss of the current batch (no backward)."""
        optimizer.step()

    def before_eval(self) -> None:
        """Prepare the model for evaluation."""

    def after_eval(self) -> None:
        """Return the model to training after evaluation."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`."""

    def info(self) -> dict[str, Any]:
        """What a run's record keeps about the schedule once it has run (a frozen MLR-SNet: its gammas)."""
        return {}

    def scale_lr(self, optimizer: torch.optim.Optimizer, factor: float) -> None:
        """Multiply the learning rate from here on by ``factor`` (divergence rollback): every param
        group's LR and the LR anchors torch schedulers keep in the group."""
        for group in optimizer.param_groups:
            for key in ("lr", "initial_lr", "max_lr", "min_lr"):
                if key in group:
                    group[key] = group[key] * factor


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

    def scale_lr(self, optimizer: torch.optim.Optimizer, factor: float) -> None:
        super().scale_lr(optimizer, factor)
        if hasattr(self.scheduler, "base_lrs"):
            self.scheduler.base_lrs = [lr * factor for lr in self.scheduler.base_lrs]
