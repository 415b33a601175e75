r"""GreedyLR: raise the LR while the loss keeps improving, lower it while it does not.

Subramanian et al., "Zeroth-Order Adaptive Learning Rate Scheduler" (GreedyLR; reference
implementation since merged into HuggingFace transformers). Each :meth:`GreedyLR.step` takes a
metric ``m`` (smoothed by a rolling mean over the last ``window_size`` values when ``smooth``) and
compares it with the best so far::

    improved  =  m < best - threshold            (mode='min', threshold_mode='abs')
                 m < best * (1 - threshold)      (mode='min', threshold_mode='rel')
                 m > best + threshold            (mode='max', threshold_mode='abs')
                 m > best * (1 + threshold)      (mode='max', threshold_mode='rel')

    more than ``patience`` consecutive improvements     ->  lr <- min(lr / factor, max_lr), then
                                                            a ``warmup`` hold
    more than ``patience`` consecutive non-improvements ->  lr <- max(lr * factor, min_lr), then
                                                            a ``cooldown`` hold

(changes smaller than ``eps`` are skipped). During a hold the metric is not compared at all (the
best value and both streaks stay as they are, at zero streak after the change), so the LR cannot
change; the smoothing window still takes the value. This is stricter than the reference, which
keeps updating the best value and suspends only the bad-step count during cooldown and only the
good-step count during warmup. After
``reset_start`` consecutive steps with every group at its ``min_lr`` (0 disables), the scheduler
returns to its initial state: the initial LRs, no best, no streaks, no hold, an empty window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer

from mlrsnet.errors import ConfigError

__all__ = ["GreedyLR"]


def _per_group(name: str, value: float | Sequence[float], n: int) -> list[float]:
    if isinstance(value, int | float):
        return [float(value)] * n
    if len(value) != n:
        raise ConfigError(f"GreedyLR: {name} has {len(value)} values for {n} param groups; give one or {n}")
    return [float(v) for v in value]


class GreedyLR:
    """GreedyLR scheduler (see the module docstring for the rule). Call :meth:`step` with the metric
    once per iteration (or per evaluation); ``patience``, ``cooldown``, ``warmup`` and
    ``reset_start`` count those calls."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.95, patience: int = 10,
                 threshold: float = 1e-6, threshold_mode: str = "abs", cooldown: int = 0, warmup: int = 0,
                 min_lr: float | Sequence[float] = 1e-3, max_lr: float | Sequence[float] = 1.0,
                 eps: float = 1e-8, smooth: bool = False, window_size: int = 50,
                 reset_start: int = 500) -> None:
        if mode not in ("min", "max"):
            raise ConfigError(f"GreedyLR: mode={mode!r} is unknown; use 'min' or 'max'")
        if threshold_mode not in ("abs", "rel"):
            raise ConfigError(f"GreedyLR: threshold_mode={threshold_mode!r} is unknown; use 'abs' or 'rel'")
        if not 0.0 < factor < 1.0:
            raise ConfigError(f"GreedyLR: factor={factor} must be in (0, 1); the LR rises by 1/factor and "
                              "falls by factor")
        for name, value in (("patience", patience), ("cooldown", cooldown), ("warmup", warmup),
                            ("reset_start", reset_start)):
            if value < 0:
                raise ConfigError(f"GreedyLR: {name}={value} must be >= 0")
        if window_size < 1:
            raise ConfigError(f"GreedyLR: window_size={window_size} must be >= 1")
        n = len(optimizer.param_groups)
        self.min_lrs = _per_group("min_lr", min_lr, n)
        self.max_lrs = _per_group("max_lr", max_lr, n)
        if any(lo > hi for lo, hi in zip(self.min_lrs, self.max_lrs, strict=True)):
            raise ConfigError(f"GreedyLR: min_lr {self.min_lrs} exceeds max_lr {self.max_lrs}; "
                              "make min_lr <= max_lr")
        self.optimizer = optimizer
        self.mode = mode
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.warmup = warmup
        self.eps = eps
        self.smooth = smooth
        self.window_size = window_size
        self.reset_start = reset_start
        self.initial_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_good_steps = 0
        self.num_bad_steps = 0
        self.cooldown_counter = 0
        self.warmup_counter = 0
        self.steps_at_min = 0
        self.window: deque[float] = deque(maxlen=self.window_size)
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def is_better(self, current: float, best: float) -> bool:
        """Whether ``current`` beats ``best`` by the threshold (see the module docstring)."""
        if self.mode == "min":
            bound = best * (1 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold
            return current < bound
        bound = best * (1 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold
        return current > bound

    def step(self, metric: float) -> None:
        """Feed one metric value and update every group's LR."""
        current = float(metric)
        if self.smooth:
            self.window.append(current)
            current = sum(self.window) / len(self.window)
        if self.cooldown_counter > 0 or self.warmup_counter > 0:
            self.cooldown_counter = max(0, self.cooldown_counter - 1)
            self.warmup_counter = max(0, self.warmup_counter - 1)
        elif self.is_better(current, self.best):
            self.best = current
            self.num_good_steps += 1
            self.num_bad_steps = 0
        else:
            self.num_bad_steps += 1
            self.num_good_steps = 0

        if self.num_bad_steps > self.patience:
            self._scale(self.factor)
            self.cooldown_counter = self.cooldown
            self.num_bad_steps = 0
        elif self.num_good_steps > self.patience:
            self._scale(1.0 / self.factor)
            self.warmup_counter = self.warmup
            self.num_good_steps = 0

        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]
        if self.reset_start:
            at_min = all(lr <= lo + self.eps for lr, lo in zip(self._last_lr, self.min_lrs, strict=True))
            self.steps_at_min = self.steps_at_min + 1 if at_min else 0
            if self.steps_at_min >= self.reset_start:
                for group, lr in zip(self.optimizer.param_groups, self.initial_lrs, strict=True):
                    group["lr"] = lr
                self._reset()

    def _scale(self, by: float) -> None:
        for group, lo, hi in zip(self.optimizer.param_groups, self.min_lrs, self.max_lrs, strict=True):
            old = float(group["lr"])
            new = min(max(old * by, lo), hi)
            if abs(new - old) > self.eps:
                group["lr"] = new

    def get_last_lr(self) -> list[float]:
        """The LRs after the last :meth:`step` (or at construction)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (the window as a list)."""
        state = {k: v for k, v in self.__dict__.items() if k != "optimizer"}
        state["window"] = list(self.window)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; the optimizer's LRs come from the optimizer's own state."""
        state = dict(state_dict)
        self.__dict__.update(state)
        self.window = deque(state["window"], maxlen=self.window_size)
