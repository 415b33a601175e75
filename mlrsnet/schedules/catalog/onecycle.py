"""``schedule=onecycle``: OneCycleLR, warm up to max_lr, then anneal."""

from dataclasses import dataclass

from mlrsnet.schedules.catalog._torch import SGDM, torch_make
from mlrsnet.schedules.spec import Schedule, ScheduleParams
from mlrsnet.typed import setting


@dataclass
class OneCycleParams(ScheduleParams):
    max_lr: float | None = setting(None, "the peak LR (null: lr0)", gt=0)
    pct_start: float | None = setting(None, "fraction of the run spent rising (null: torch's 0.3)", gt=0, lt=1)
    anneal_strategy: str | None = setting(None, "cos | linear", choices=("cos", "linear"))
    cycle_momentum: bool | None = setting(None, "cycle the momentum inversely (null: torch's true)")
    base_momentum: float | None = setting(None, "torch's base_momentum", ge=0)
    max_momentum: float | None = setting(None, "torch's max_momentum", ge=0)
    div_factor: float | None = setting(None, "initial LR = max_lr / div_factor", gt=0)
    final_div_factor: float | None = setting(None, "last LR = initial LR / final_div_factor", gt=0)
    three_phase: bool | None = setting(None, "torch's three_phase")


SCHEDULE = Schedule(
    name="onecycle", summary="OneCycleLR: warm up to max_lr, then anneal",
    reference="Smith & Topin, Super-Convergence, 2019", kind="scheduler", params=OneCycleParams, optimizer=SGDM,
    simplicity=90, make=torch_make("onecycle"),
)
