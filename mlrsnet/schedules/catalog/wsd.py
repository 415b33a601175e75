"""``schedule=wsd``: warmup-stable-decay (Hägele et al., "Scaling Laws and Compute-Optimal Training Beyond Fixed
Training Durations", NeurIPS 2024; Hu et al., MiniCPM, 2024).

A linear warmup over the first ``warmup_fraction`` of the run, the base LR for the stable phase, then a decay
(the "cooldown") over the last ``decay_fraction`` of the run to ``final_factor`` x lr0::

    factor(t) = (t + 1) / W                                  t < W                 (warmup)
              = 1                                            W <= t < T - D        (stable)
              = f + (1 - f) * shape((t - (T - D)) / D)       T - D <= t < T        (decay)
    shape(p)  = 1 - p (linear) | 1 - sqrt(p) (1-sqrt, Hägele et al.'s best cooldown)

with T the run's steps, W = round(warmup_fraction T), D = max(1, round(decay_fraction T)) and f = final_factor.
Defaults: no warmup, a 20% decay, 1-sqrt, to 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.spec import Range, Schedule, ScheduleParams
from mlrsnet.typed import setting

SHAPES = ("1-sqrt", "linear")


def wsd_factor(t: int, total_steps: int, warmup_steps: int, decay_steps: int, decay: str = "1-sqrt",
               final_factor: float = 0.0) -> float:
    """The LR of step ``t`` as a fraction of lr0 (the module docstring's formula)."""
    if t < warmup_steps:
        return (t + 1) / warmup_steps
    start = total_steps - decay_steps
    if t < start:
        return 1.0
    p = min(1.0, (t - start) / decay_steps)
    shape = 1.0 - math.sqrt(p) if decay == "1-sqrt" else 1.0 - p
    return final_factor + (1.0 - final_factor) * shape


@dataclass
class WSDParams(ScheduleParams):
    warmup_fraction: float = setting(0.0, "fraction of the run spent warming up linearly", ge=0, lt=1)
    decay_fraction: float = setting(0.2, "fraction of the run spent decaying (the cooldown)", gt=0, le=1)
    decay: str = setting("1-sqrt", "shape of the decay: 1-sqrt | linear", choices=SHAPES)
    final_factor: float = setting(0.0, "the last LR as a fraction of lr0", ge=0, le=1)

    def check(self, prefix: str) -> None:
        if self.warmup_fraction + self.decay_fraction > 1:
            raise ConfigError(f"{prefix}warmup_fraction ({self.warmup_fraction:g}) and {prefix}decay_fraction "
                              f"({self.decay_fraction:g}) must sum to at most 1; shorten one of them")


def _make(optimizer: Optimizer, total_steps: int, steps_per_epoch: int, **params: Any) -> LambdaLR:
    p = WSDParams(**params)
    warmup = round(p.warmup_fraction * total_steps)
    steps = max(1, round(p.decay_fraction * total_steps))
    return LambdaLR(optimizer, lambda t: wsd_factor(t, total_steps, warmup, steps, p.decay, p.final_factor))


SCHEDULE = Schedule(
    name="wsd", summary="warmup-stable-decay: linear warmup, the base LR, then a linear or 1-sqrt decay over the "
    "final decay_fraction of the run", reference="Hägele et al., Scaling Laws and Compute-Optimal Training Beyond "
    "Fixed Training Durations, NeurIPS 2024; Hu et al., MiniCPM, 2024", kind="scheduler", params=WSDParams,
    optimizer={"momentum": 0.9}, simplicity=67, make=_make,
    search={"lr": Range(0.1, 10.0), "decay_fraction": Range(0.1, 0.5, log=False)},
)
