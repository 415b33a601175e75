"""``schedule=linear``: LinearLR, a linear decay to end_factor * lr0 over the run."""

from dataclasses import dataclass

from mlrsnet.schedules.catalog._torch import SGDM, TORCH, WarmupParams, torch_make
from mlrsnet.schedules.spec import Schedule
from mlrsnet.typed import setting


@dataclass
class LinearParams(WarmupParams):
    end_factor: float | None = setting(None, "the last LR as a fraction of lr0 (null: 0)", ge=0)


SCHEDULE = Schedule(
    name="linear", summary="LinearLR: linear decay to end_factor * lr0 over the run", reference=TORCH,
    kind="scheduler", params=LinearParams, optimizer=SGDM, simplicity=50, make=torch_make("linear"),
)
