"""``schedule=sls``: SGD with a stochastic Armijo line search (Vaswani et al. 2019)."""

from dataclasses import dataclass
from typing import Any

from mlrsnet.schedules.line_search import SGDArmijo
from mlrsnet.schedules.spec import BuildContext, Schedule, ScheduleParams
from mlrsnet.typed import setting


@dataclass
class SLSParams(ScheduleParams):
    lr: float | None = setting(None, "the initial step size (null: optimizer.lr)", gt=0)
    c: float | None = setting(None, "Armijo constant (null: 0.1)", gt=0, lt=1)
    beta_b: float | None = setting(None, "backtracking factor (null: 0.9)", gt=0, lt=1)
    gamma: float | None = setting(None, "step-size reset growth (null: 2)", ge=1)
    reset_option: int | None = setting(None, "0 | 1 | 2 (null: 1)", choices=(0, 1, 2))
    n_batches_per_epoch: int | None = setting(None, "(null: steps per epoch)", ge=1)
    max_backtracks: int | None = setting(None, "(null: 100)", ge=1)
    eta_max: float | None = setting(None, "cap on the step size (null: none)", gt=0)


def _defaults(ctx: BuildContext, given: dict) -> dict:
    return {"n_batches_per_epoch": ctx.steps_per_epoch}


def _make(params: Any, lr: float, **kw: Any) -> SGDArmijo:
    return SGDArmijo(params, init_step_size=lr, **kw)


SCHEDULE = Schedule(
    name="sls", summary="SGD with stochastic Armijo line search and step-size reset",
    reference="Vaswani et al., Painless Stochastic Gradient, NeurIPS 2019", kind="closure_optimizer",
    params=SLSParams, simplicity=140, defaults=_defaults, make=_make,
)
