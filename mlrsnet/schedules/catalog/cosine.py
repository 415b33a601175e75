"""``schedule=cosine``: CosineAnnealingLR over the run (after warmup)."""

from dataclasses import dataclass

from mlrsnet.schedules.catalog._torch import SGDM, SGDR, WarmupParams, torch_make
from mlrsnet.schedules.spec import Schedule
from mlrsnet.typed import setting


@dataclass
class CosineParams(WarmupParams):
    eta_min: float = setting(0.0, "the last LR", ge=0)
    T_max: int | None = setting(None, "iterations of the half cosine (null: the run's iterations after warmup)",
                                ge=1)


SCHEDULE = Schedule(
    name="cosine", summary="CosineAnnealingLR over the run (after warmup)", reference=SGDR, kind="scheduler",
    params=CosineParams, optimizer=SGDM, simplicity=60, make=torch_make("cosine"),
)
