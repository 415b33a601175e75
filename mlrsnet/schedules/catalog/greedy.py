"""``schedule=greedy``: GreedyLR on the training loss of every batch (Subramanian et al.)."""

from dataclasses import dataclass
from typing import Any

from mlrsnet.schedules.catalog._torch import SGDM
from mlrsnet.schedules.greedy import GreedyLR
from mlrsnet.schedules.spec import Schedule, ScheduleParams
from mlrsnet.typed import setting

GREEDY = "Subramanian et al., Zeroth-Order Adaptive Learning Rate Scheduler (GreedyLR)"


@dataclass
class GreedyParams(ScheduleParams):
    """GreedyLR's own arguments (null: GreedyLR's default)."""

    factor: float | None = setting(None, "LR / factor after patience improvements, LR * factor after patience "
                                   "non-improvements", gt=0, lt=1)
    patience: int | None = setting(None, "steps of (non-)improvement before a change", ge=0)
    mode: str | None = setting(None, "min | max", choices=("min", "max"))
    threshold: float | None = setting(None, "improvement threshold", ge=0)
    threshold_mode: str | None = setting(None, "abs | rel", choices=("abs", "rel"))
    cooldown: int | None = setting(None, "steps after a change before the next", ge=0)
    warmup: int | None = setting(None, "steps before the first change", ge=0)
    min_lr: float | None = setting(None, "lower bound of the LR", ge=0)
    max_lr: float | None = setting(None, "upper bound of the LR", gt=0)
    eps: float | None = setting(None, "smallest LR change applied", ge=0)
    smooth: bool | None = setting(None, "smooth the loss over window_size steps")
    window_size: int | None = setting(None, "the smoothing window", ge=1)
    reset_start: int | None = setting(None, "steps before the LR is reset to its start", ge=0)


def greedy_make(optimizer: Any, total_steps: int, steps_per_epoch: int, **params: Any) -> GreedyLR:
    return GreedyLR(optimizer, **params)


SCHEDULE = Schedule(
    name="greedy", summary="GreedyLR: lr / factor after patience improvements, lr * factor after patience "
    "non-improvements", reference=GREEDY, kind="metric_scheduler", params=GreedyParams, optimizer=SGDM,
    simplicity=110, make=greedy_make,
)
