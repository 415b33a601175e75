"""``schedule=step``: StepLR, lr0 * gamma^floor(t / step_size); by default x0.1 every third of the run."""

from dataclasses import dataclass

from mlrsnet.schedules.catalog._torch import SGDM, TORCH, WarmupParams, torch_make
from mlrsnet.schedules.spec import BuildContext, Schedule
from mlrsnet.typed import setting


@dataclass
class StepParams(WarmupParams):
    step_size: int | None = setting(None, "iterations between decays (null: T // 3)", ge=1)
    step_size_epochs: float | None = setting(None, "epochs between decays (instead of step_size)", gt=0)
    gamma: float | None = setting(None, "decay factor (null: 0.1)", gt=0)


def _defaults(ctx: BuildContext, given: dict) -> dict:
    out = {"gamma": 0.1}
    if "step_size_epochs" not in given:
        out["step_size"] = max(1, ctx.total_steps // 3)
    return out


SCHEDULE = Schedule(
    name="step", summary="StepLR: lr0 * gamma^floor(t / step_size)", reference=TORCH, kind="scheduler",
    params=StepParams, optimizer=SGDM, simplicity=20, defaults=_defaults, make=torch_make("step"),
)
