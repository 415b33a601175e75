"""``schedule=fixed``: the base optimiser's LR, unchanged (SGDM+Fixed)."""

from mlrsnet.schedules.base import LRDriver
from mlrsnet.schedules.catalog._torch import SGDM
from mlrsnet.schedules.spec import BuildContext, Built, Schedule, ScheduleParams


def _build(ctx: BuildContext, params: ScheduleParams) -> Built:
    for group in ctx.optimizer.param_groups:
        group["lr"] = float(group["lr"]) * ctx.lr_multiplier
    return Built(ctx.optimizer, LRDriver())


SCHEDULE = Schedule(
    name="fixed", summary="the base optimizer's LR, unchanged", reference="a constant LR (SGDM+Fixed)",
    kind="fixed", optimizer=SGDM, simplicity=0, build=_build,
)
