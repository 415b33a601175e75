"""``schedule=plateau``: ReduceLROnPlateau on the meta-validation loss, once per epoch."""

from dataclasses import dataclass

from mlrsnet.schedules.catalog._torch import SGDM, TORCH, torch_make
from mlrsnet.schedules.spec import BuildContext, Schedule, ScheduleParams
from mlrsnet.typed import setting


@dataclass
class PlateauParams(ScheduleParams):
    factor: float | None = setting(None, "LR factor after `patience` bad evaluations (null: 0.1)", gt=0, lt=1)
    patience: int | None = setting(None, "evaluations without improvement (null: max(1, epochs // 10))", ge=0)
    mode: str | None = setting(None, "min | max (null: min)", choices=("min", "max"))
    threshold: float | None = setting(None, "torch's threshold", ge=0)
    threshold_mode: str | None = setting(None, "rel | abs", choices=("rel", "abs"))
    cooldown: int | None = setting(None, "torch's cooldown", ge=0)
    min_lr: float | None = setting(None, "lower bound of the LR", ge=0)
    eps: float | None = setting(None, "torch's eps", ge=0)
    metric_key: str | None = setting(None, "the epoch record's key it watches (null: meta_loss; never a test key)")


def _defaults(ctx: BuildContext, given: dict) -> dict:
    return {"factor": 0.1, "patience": max(1, ctx.epochs // 10)}


SCHEDULE = Schedule(
    name="plateau", summary="ReduceLROnPlateau: lr *= factor after patience bad evaluations", reference=TORCH,
    kind="eval_metric_scheduler", params=PlateauParams, optimizer=SGDM, simplicity=70, defaults=_defaults,
    make=torch_make("plateau"),
)
