"""``schedule=greedy_eval``: GreedyLR stepped on the meta-validation loss every ``eval_interval`` steps, as
transformers' Trainer steps it on the eval loss."""

from dataclasses import dataclass
from typing import Any

from mlrsnet.schedules.catalog.greedy import GREEDY, GreedyParams
from mlrsnet.schedules.greedy import GreedyLR
from mlrsnet.schedules.spec import BuildContext, Schedule
from mlrsnet.typed import setting


@dataclass
class GreedyEvalParams(GreedyParams):
    eval_interval: int | None = setting(None, "steps between evaluations (null: steps per epoch // 4)", ge=1)
    patience: int | None = setting(1, "evaluations of (non-)improvement before a change", ge=0)
    factor: float | None = setting(0.7, "LR / factor after patience improvements, LR * factor after patience "
                                   "non-improvements", gt=0, lt=1)
    reset_start: int | None = setting(0, "evaluations before the LR is reset to its start", ge=0)


def _defaults(ctx: BuildContext, given: dict) -> dict:
    return {"eval_interval": max(1, ctx.steps_per_epoch // 4)}


def _make(optimizer: Any, total_steps: int, steps_per_epoch: int, **params: Any) -> GreedyLR:
    lr = float(optimizer.param_groups[0]["lr"])  # the base LR times the multiplier
    params.setdefault("min_lr", lr / 100)
    params.setdefault("max_lr", lr * 10)
    return GreedyLR(optimizer, **params)


SCHEDULE = Schedule(
    name="greedy_eval", summary="GreedyLR stepped on the meta-validation loss every eval_interval iterations (as "
    "transformers' Trainer steps it on the eval loss); min_lr / max_lr null: the base LR / 100 and x 10",
    reference=GREEDY, kind="eval_loss_scheduler", params=GreedyEvalParams, simplicity=115, defaults=_defaults,
    make=_make,
)
