"""``schedule=exponential``: ExponentialLR, lr0 * gamma^t; by default the LR falls 100x over the run."""

from dataclasses import dataclass

from mlrsnet.schedules.catalog._torch import SGDM, TORCH, WarmupParams, torch_make
from mlrsnet.schedules.spec import BuildContext, Schedule
from mlrsnet.typed import setting


@dataclass
class ExponentialParams(WarmupParams):
    gamma: float | None = setting(None, "per-iteration factor (null: 0.01 ** (1 / T))", gt=0)
    gamma_per_epoch: float | None = setting(None, "per-epoch factor (instead of gamma)", gt=0)


def _defaults(ctx: BuildContext, given: dict) -> dict:
    return {} if "gamma_per_epoch" in given else {"gamma": 0.01 ** (1.0 / ctx.total_steps)}


SCHEDULE = Schedule(
    name="exponential", summary="ExponentialLR: lr0 * gamma^t", reference=TORCH, kind="scheduler",
    params=ExponentialParams, optimizer=SGDM, simplicity=40, defaults=_defaults, make=torch_make("exponential"),
)
