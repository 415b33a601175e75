"""``schedule=sgdr``: CosineAnnealingWarmRestarts; by default restarts at T/7 and 3T/7."""

from dataclasses import dataclass

from mlrsnet.schedules.catalog._torch import SGDM, SGDR, WarmupParams, torch_make
from mlrsnet.schedules.spec import BuildContext, Schedule
from mlrsnet.typed import setting


@dataclass
class SGDRParams(WarmupParams):
    T_0: int | None = setting(None, "iterations of the first cycle (null: T // 7)", ge=1)
    T_0_epochs: float | None = setting(None, "the first cycle in epochs (instead of T_0)", gt=0)
    T_mult: int | None = setting(None, "cycle length multiplier (null: 2)", ge=1)
    eta_min: float | None = setting(None, "the lowest LR (null: 0)", ge=0)


def _defaults(ctx: BuildContext, given: dict) -> dict:
    out = {"T_mult": 2}
    if "T_0_epochs" not in given:
        out["T_0"] = max(1, ctx.total_steps // 7)
    return out


SCHEDULE = Schedule(
    name="sgdr", summary="CosineAnnealingWarmRestarts: cosine restarted every T_0 * T_mult^i", reference=SGDR,
    kind="scheduler", params=SGDRParams, optimizer=SGDM, simplicity=80, defaults=_defaults, make=torch_make("sgdr"),
)
