"""``schedule=l4``: L4, a loss-based step size along an Adam (or momentum) direction (Rolinek & Martius 2018);
replaces the base optimiser."""

from dataclasses import dataclass

from mlrsnet.schedules.l4 import L4
from mlrsnet.schedules.optim import check_betas
from mlrsnet.schedules.spec import Schedule, ScheduleParams
from mlrsnet.typed import setting


@dataclass
class L4Params(ScheduleParams):
    lr: float | None = setting(None, "multiplies L4's step (null: 1)", gt=0)
    direction: str = setting("adam", "adam (L4Adam) or momentum (L4Mom)", choices=("adam", "momentum"))
    alpha: float = setting(0.15, "the authors' 'fraction'", gt=0)
    gamma: float = setting(0.9, "L* = gamma * Lmin", gt=0, le=1)
    gamma0: float = setting(0.75, "Lmin starts at gamma0 * L_0", gt=0, le=1)
    tau: float = setting(1000.0, "Lmin forget time: Lmin <- (1 + 1/tau) Lmin every step", gt=0)
    eps: float = setting(1e-12, "added to the denominator", ge=0)
    betas: list[float] = setting([0.9, 0.999], "time scales 10 and 1000")
    adam_eps: float = setting(1e-4, "the Adam direction's epsilon", gt=0)

    def check(self, prefix: str) -> None:
        check_betas(f"{prefix}betas", self.betas)


SCHEDULE = Schedule(
    name="l4", summary="L4: step alpha * (L - gamma * Lmin) / (g . v) along an Adam (or momentum) direction v",
    reference="Rolinek & Martius, L4: Practical loss-based stepsize adaptation for deep learning, NeurIPS 2018",
    kind="loss_optimizer", params=L4Params, simplicity=230, make=L4, inherits=("weight_decay",), default_lr=1.0,
)
