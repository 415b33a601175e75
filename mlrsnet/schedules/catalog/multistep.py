"""``schedule=multistep``: MultiStepLR, x gamma at each milestone; by default x0.1 at T/2 and 3T/4."""

from dataclasses import dataclass

from mlrsnet.schedules.catalog._torch import SGDM, TORCH, WarmupParams, torch_make
from mlrsnet.schedules.spec import BuildContext, Schedule
from mlrsnet.typed import setting


@dataclass
class MultiStepParams(WarmupParams):
    milestones: list[int] | None = setting(None, "iterations at which the LR is multiplied by gamma (null: "
                                           "[T // 2, 3T // 4])")
    milestones_epochs: list[float] | None = setting(None, "the milestones in epochs (instead of milestones)")
    gamma: float | None = setting(None, "decay factor (null: 0.1)", gt=0)


def _defaults(ctx: BuildContext, given: dict) -> dict:
    t = ctx.total_steps
    out: dict = {"gamma": 0.1}
    if "milestones_epochs" not in given:
        out["milestones"] = sorted({max(1, t // 2), max(1, 3 * t // 4)})
    return out


SCHEDULE = Schedule(
    name="multistep", summary="MultiStepLR: multiply by gamma at each milestone", reference=TORCH,
    kind="scheduler", params=MultiStepParams, optimizer=SGDM, simplicity=30, defaults=_defaults,
    make=torch_make("multistep"),
)
