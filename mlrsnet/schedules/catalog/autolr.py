"""``schedule=autolr``: AutoLR-style periodic LR probing (an interpretation of Kwatra et al.)."""

from dataclasses import dataclass
from typing import Any

from mlrsnet.schedules.autolr import AutoLRTuner
from mlrsnet.schedules.catalog._torch import SGDM
from mlrsnet.schedules.spec import BuildContext, Schedule, ScheduleParams
from mlrsnet.typed import setting


@dataclass
class AutoLRParams(ScheduleParams):
    interval: int | None = setting(None, "steps between probes (null: steps per epoch)", ge=1)
    horizon: int | None = setting(None, "steps each probe trains (null: min(20, steps per epoch // 5))", ge=1)
    factors: list[float] | None = setting(None, "LR multipliers probed (null: 1/4, 1/2, 1, 2, 4)")
    min_lr: float | None = setting(None, "lower bound of the LR (null: 1e-6)", gt=0)
    max_lr: float | None = setting(None, "upper bound of the LR (null: 10)", gt=0)


def _defaults(ctx: BuildContext, given: dict) -> dict:
    spe = ctx.steps_per_epoch
    return {"interval": spe, "horizon": max(1, min(20, spe // 5))}


def _make(optimizer: Any, total_steps: int, steps_per_epoch: int, *, model: Any, loss_fn: Any,
          **params: Any) -> AutoLRTuner:
    return AutoLRTuner(optimizer, model, loss_fn, **params)


SCHEDULE = Schedule(
    name="autolr", summary="probe lr * {1/4..4} for a few steps every interval, fit loss vs ln lr (interpretation "
    "of AutoLR)", reference="Kwatra et al., AutoLR / LRTuner, 2021", kind="tuner", params=AutoLRParams,
    optimizer=SGDM, simplicity=150, defaults=_defaults, make=_make,
)
