"""``schedule=constant``: a constant LR, optionally after a linear warmup."""

from mlrsnet.schedules.catalog._torch import SGDM, TORCH, WarmupParams, torch_make
from mlrsnet.schedules.spec import Schedule

SCHEDULE = Schedule(
    name="constant", summary="constant LR (optionally after a linear warmup)", reference=TORCH,
    kind="scheduler", params=WarmupParams, optimizer=SGDM, simplicity=10, make=torch_make("constant"),
)
