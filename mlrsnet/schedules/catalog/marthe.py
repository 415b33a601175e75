"""``schedule=marthe``: MARTHE, an online hypergradient of the meta-validation loss (Donini et al., IJCAI 2020)."""

from dataclasses import dataclass
from typing import Any

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.marthe import MartheTuner
from mlrsnet.schedules.spec import Schedule, ScheduleParams
from mlrsnet.typed import setting

MARTHE = "Donini et al., MARTHE: Scheduling the Learning Rate via Online Hypergradients, IJCAI 2020"


@dataclass
class RTHOParams(ScheduleParams):
    hyper_lr: float = setting(1e-5, "beta: eta <- max(eta - beta * h, 0); tune it per task", ge=0)
    clip: float | None = setting(100.0, "elementwise clamp of the gradients entering h (the authors' "
                                 "grad_clipping); null: none", gt=0)
    eta_max: float | None = setting(None, "optional cap on the LR (null: none, as in the reference)", gt=0)


@dataclass
class MartheParams(RTHOParams):
    mu: Any = setting("auto", "tangent discount: a number in [0, 1], or auto (MARTHE's adaptive rule)")

    def check(self, prefix: str) -> None:
        if self.mu != "auto" and not (isinstance(self.mu, int | float) and not isinstance(self.mu, bool)
                                      and 0 <= self.mu <= 1):
            raise ConfigError(f"{prefix}mu must be a number in [0, 1] or auto, got {self.mu!r}; set {prefix}mu=auto")


def _make(optimizer: Any, total_steps: int, steps_per_epoch: int, **params: Any) -> MartheTuner:
    return MartheTuner(optimizer, **params)


SCHEDULE = Schedule(
    name="marthe", summary="MARTHE: eta -= beta * grad E . Z, tangent Z = d theta / d eta discounted by mu (fixed or "
    "adapted), E on a meta-validation batch", reference=MARTHE, kind="hypergradient", params=MartheParams,
    optimizer={"name": "sgd"}, simplicity=210, make=_make,
)
