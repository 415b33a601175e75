r"""GreedyLR: raise the LR while the loss keeps improving, lower it while it does not.

Subramanian et al., "Zeroth-Order Adaptive Learning Rate Scheduler" (GreedyLR; reference
implementation: ``transformers.optimization.GreedyLR`` of HuggingFace transformers 5.4 and later, whose
behaviour, constructor arguments and ``state_dict`` this class reproduces; CI checks it against that class
on random configurations, ``tests/test_parity_greedy.py``). Each :meth:`GreedyLR.step` takes a
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

A rise is applied only if it raises the LR by more than ``eps``, a fall only if it lowers it by more
than ``eps``; so an initial LR outside ``[min_lr, max_lr]`` is never clamped, it is only moved by
the rule (an LR below ``min_lr`` can still rise by ``1/factor``, one above ``max_lr`` can still fall
by ``factor``). A warning says so at construction, since the default ``min_lr=1e-3`` lies above the
usual fine-tuning LRs. During a hold the metric is not compared at all (the best value stays, both
streaks are zero), so the LR cannot change; the smoothing window still takes the value. The
reference does the same (the transformers code does not update the best value during a hold).

Reset: every fall attempted while every group is at (or below) its ``min_lr`` after the attempt
counts down from ``reset_start``; a rise restarts the count. When it reaches zero the scheduler
returns to its initial state (the initial LRs, no best, no streaks, no hold, an empty window) and,
as after any fall, starts a ``cooldown`` hold. So ``reset_start=0`` resets at the first fall that
ends at ``min_lr``; ``reset_start=None`` (an extension) never resets.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer

from mlrsnet.errors import ConfigError

__all__ = ["GreedyLR", "GreedyLRError", "NotAnOptimizerError"]


class GreedyLRError(ConfigError, ValueError):
    """A bad GreedyLR argument; a ``ValueError`` too, as the reference raises."""


class NotAnOptimizerError(GreedyLRError, TypeError):
    """GreedyLR was given something that is not a ``torch.optim.Optimizer`` (the reference raises
    ``TypeError``; the issue asks for ``ValueError``: this is both)."""


def _per_group(name: str, value: float | Sequence[float], n: int) -> list[float]:
    if isinstance(value, int | float):
        return [float(value)] * n
    if len(value) != n:
        raise GreedyLRError(f"GreedyLR: {name} has {len(value)} values for {n} param groups; give one or {n}")
    return [float(v) for v in value]


class GreedyLR:
    """GreedyLR scheduler (see the module docstring for the rule). Call :meth:`step` with the metric
    once per iteration (or per evaluation); ``patience``, ``cooldown``, ``warmup`` and
    ``reset_start`` count those calls. Takes the reference's arguments (``verbose`` prints each
    change)."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.95, patience: int = 10,
                 threshold: float = 1e-6, threshold_mode: str = "abs", cooldown: int = 0, warmup: int = 0,
                 min_lr: float | Sequence[float] = 1e-3, max_lr: float | Sequence[float] = 1.0,
                 eps: float = 1e-8, verbose: bool = False, smooth: bool = False, window_size: int = 50,
                 reset_start: int | None = 500) -> None:
        if not isinstance(optimizer, Optimizer):
            raise NotAnOptimizerError(f"GreedyLR: {type(optimizer).__name__} is not a torch.optim.Optimizer; "
                                      "pass the optimizer whose LR it should schedule")
        if mode not in ("min", "max"):
            raise GreedyLRError(f"GreedyLR: mode={mode!r} is unknown; use 'min' or 'max'")
        if threshold_mode not in ("abs", "rel"):
            raise GreedyLRError(f"GreedyLR: threshold_mode={threshold_mode!r} is unknown; use 'abs' or 'rel'")
        if not 0.0 < factor < 1.0:
            raise GreedyLRError(f"GreedyLR: factor={factor} must be in (0, 1); the LR rises by 1/factor and "
                                "falls by factor")
        for name, value in (("patience", patience), ("cooldown", cooldown), ("warmup", warmup),
                            ("reset_start", 0 if reset_start is None else reset_start)):
            if value < 0:
                raise GreedyLRError(f"GreedyLR: {name}={value} must be >= 0")
        if window_size < 1:
            raise GreedyLRError(f"GreedyLR: window_size={window_size} must be >= 1")
        n = len(optimizer.param_groups)
        self.min_lrs = _per_group("min_lr", min_lr, n)
        self.max_lrs = _per_group("max_lr", max_lr, n)
        if any(lo > hi for lo, hi in zip(self.min_lrs, self.max_lrs, strict=True)):
            raise GreedyLRError(f"GreedyLR: min_lr {self.min_lrs} exceeds max_lr {self.max_lrs}; "
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
        self.verbose = verbose
        self.smooth = smooth
        self.window_size = window_size
        self.reset_start = reset_start
        self.last_epoch = 0
        self.initial_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        outside = [i for i, (lr, lo, hi) in enumerate(zip(self.initial_lrs, self.min_lrs, self.max_lrs, strict=True))
                   if not lo <= lr <= hi]
        if outside:
            warnings.warn(f"GreedyLR: the initial LR of param group(s) {outside} lies outside [min_lr, max_lr] "
                          f"({self.initial_lrs} vs {self.min_lrs}, {self.max_lrs}); it is not clamped, so set "
                          "min_lr/max_lr around the LR you start from", stacklevel=2)
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_good_steps = 0
        self.num_bad_steps = 0
        self.cooldown_counter = 0
        self.warmup_counter = 0
        self.reset_countdown = self.reset_start
        self.window: deque[float] = deque(maxlen=self.window_size)
        # The reference keeps a running sum, not sum(window): the same float rounding, so the same decisions.
        self.window_sum = 0.0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def is_better(self, current: float, best: float) -> bool:
        """Whether ``current`` beats ``best`` by the threshold (see the module docstring)."""
        if self.mode == "min":
            bound = best * (1 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold
            return current < bound
        bound = best * (1 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold
        return current > bound

    def _smoothed(self, value: float) -> float:
        # Add, then drop the oldest: the reference's order of the float operations.
        self.window_sum += value
        if len(self.window) == self.window_size:
            self.window_sum -= self.window[0]
        self.window.append(value)
        return self.window_sum / len(self.window)

    def step(self, metrics: float, epoch: int | None = None) -> None:
        """Feed one metric value and update every group's LR (``epoch``, as in the reference, only
        numbers the call: the default is the previous one plus one)."""
        current = float(metrics)
        if self.smooth:
            current = self._smoothed(current)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_steps = self.num_good_steps = 0
        elif self.warmup_counter > 0:
            self.warmup_counter -= 1
            self.num_bad_steps = self.num_good_steps = 0
        else:
            if self.is_better(current, self.best):
                self.best = current
                self.num_good_steps += 1
                self.num_bad_steps = 0
            else:
                self.num_bad_steps += 1
                self.num_good_steps = 0
            if self.num_good_steps > self.patience:
                self._increase()
                self.warmup_counter = self.warmup
                self.num_good_steps = 0
            elif self.num_bad_steps > self.patience:
                self._reduce()
                # Also after a reset: the reference starts a cooldown hold there too.
                self.cooldown_counter = self.cooldown
                self.num_bad_steps = 0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def _reduce(self) -> None:
        all_at_min = True
        for i, (group, lo) in enumerate(zip(self.optimizer.param_groups, self.min_lrs, strict=True)):
            old = float(group["lr"])
            new = max(old * self.factor, lo)
            if old - new > self.eps:
                group["lr"] = new
                if self.verbose:
                    print(f"Epoch {self.last_epoch}: reducing learning rate of group {i} to {new:.4e}.")
            if float(group["lr"]) > lo:
                all_at_min = False
        if all_at_min and self.reset_countdown is not None:
            self.reset_countdown -= 1
            if self.reset_countdown <= 0:
                for group, lr in zip(self.optimizer.param_groups, self.initial_lrs, strict=True):
                    group["lr"] = lr
                self._reset()
                if self.verbose:
                    print("GreedyLR: reset to the initial state.")

    def _increase(self) -> None:
        for i, (group, hi) in enumerate(zip(self.optimizer.param_groups, self.max_lrs, strict=True)):
            old = float(group["lr"])
            new = min(old / self.factor, hi)
            if new - old > self.eps:
                group["lr"] = new
                if self.verbose:
                    print(f"Epoch {self.last_epoch}: increasing learning rate of group {i} to {new:.4e}.")
        self.reset_countdown = self.reset_start

    def get_last_lr(self) -> list[float]:
        """The LRs after the last :meth:`step` (or at construction)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """The reference's ``state_dict`` keys (so either class loads the other's), plus ``window``."""
        return {
            "factor": self.factor, "min_lrs": list(self.min_lrs), "max_lrs": list(self.max_lrs),
            "patience": self.patience, "verbose": self.verbose, "cooldown": self.cooldown, "warmup": self.warmup,
            "cooldown_counter": self.cooldown_counter, "warmup_counter": self.warmup_counter, "mode": self.mode,
            "threshold": self.threshold, "threshold_mode": self.threshold_mode, "best": self.best,
            "num_bad_epochs": self.num_bad_steps, "num_good_epochs": self.num_good_steps, "eps": self.eps,
            "last_epoch": self.last_epoch, "smooth": self.smooth, "window_size": self.window_size,
            "reset_start": self.reset_countdown, "reset_start_original": self.reset_start,
            "_last_lr": list(self._last_lr), "_init_lrs": list(self.initial_lrs),
            "_streaming_avg": {"window_size": self.window_size, "values": list(self.window), "sum": self.window_sum},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` or from a ``state_dict`` of the reference class. Missing keys
        keep their current values (as in the reference); the param groups' LRs are set from ``_last_lr``."""
        s = state_dict
        for ours, theirs in (("factor", "factor"), ("min_lrs", "min_lrs"), ("max_lrs", "max_lrs"),
                             ("patience", "patience"), ("verbose", "verbose"), ("cooldown", "cooldown"),
                             ("warmup", "warmup"), ("cooldown_counter", "cooldown_counter"),
                             ("warmup_counter", "warmup_counter"), ("mode", "mode"), ("threshold", "threshold"),
                             ("threshold_mode", "threshold_mode"), ("best", "best"),
                             ("num_bad_steps", "num_bad_epochs"), ("num_good_steps", "num_good_epochs"),
                             ("eps", "eps"), ("last_epoch", "last_epoch"), ("smooth", "smooth"),
                             ("window_size", "window_size"), ("reset_countdown", "reset_start"),
                             ("reset_start", "reset_start_original"), ("initial_lrs", "_init_lrs")):
            if theirs in s:
                setattr(self, ours, s[theirs])
        self.min_lrs, self.max_lrs = list(self.min_lrs), list(self.max_lrs)
        avg = s.get("_streaming_avg")
        if avg is not None:
            self.window_size = int(avg.get("window_size", self.window_size))
            self.window = deque((float(v) for v in avg.get("values", [])), maxlen=self.window_size)
            self.window_sum = float(avg.get("sum", sum(self.window)))
        elif self.window.maxlen != self.window_size:
            self.window = deque(self.window, maxlen=self.window_size)
        if "_last_lr" in s:
            self._last_lr = [float(v) for v in s["_last_lr"]]
            for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
                group["lr"] = lr
