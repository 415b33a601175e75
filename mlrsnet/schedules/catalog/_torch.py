"""What the declarations of PyTorch's built-in schedulers share: the linear-warmup parameters and the
builder (:func:`mlrsnet.schedules.builtin.build_torch_scheduler`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer

from mlrsnet.schedules.builtin import build_torch_scheduler
from mlrsnet.schedules.spec import ScheduleParams
from mlrsnet.typed import setting

SGDM = {"momentum": 0.9}  # the paper's SGDM+... baselines
TORCH = "PyTorch torch.optim.lr_scheduler"
SGDR = "Loshchilov & Hutter, SGDR, ICLR 2017"


@dataclass
class WarmupParams(ScheduleParams):
    """A linear warmup in front of the schedule (iterations or epochs), from ``warmup_start_factor`` x lr0."""

    warmup_steps: int | None = setting(None, "linear warmup iterations (null: none)", ge=0)
    warmup_epochs: float | None = setting(None, "linear warmup in epochs (instead of warmup_steps)", ge=0)
    warmup_start_factor: float | None = setting(None, "the warmup's first LR as a fraction of lr0 (null: 1e-3)",
                                                gt=0, le=1)


def torch_make(name: str) -> Callable[..., Any]:
    """The ``make`` of torch schedule ``name``: ``build_torch_scheduler(name, optimizer, total, per_epoch, **kw)``."""

    def make(optimizer: Optimizer, total_steps: int, steps_per_epoch: int, **kw: Any) -> Any:
        return build_torch_scheduler(name, optimizer, total_steps, steps_per_epoch, **kw)

    return make
