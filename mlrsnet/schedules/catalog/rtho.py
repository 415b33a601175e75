"""``schedule=rtho``: RTHO (Franceschi et al., ICML 2017), MARTHE with mu = 1: the exact online hypergradient of
the whole run."""

from typing import Any

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.catalog.marthe import RTHOParams
from mlrsnet.schedules.marthe import MartheTuner
from mlrsnet.schedules.spec import Schedule


def _make(optimizer: Any, total_steps: int, steps_per_epoch: int, **params: Any) -> MartheTuner:
    if "mu" in params:
        raise ConfigError("schedule rtho is MARTHE with mu=1; use schedule=marthe to set mu")
    return MartheTuner(optimizer, mu=1.0, **params)


SCHEDULE = Schedule(
    name="rtho", summary="RTHO: MARTHE with mu = 1 (the exact online hypergradient of the whole run)",
    reference="Franceschi et al., Forward and Reverse Gradient-Based Hyperparameter Optimization, ICML 2017",
    kind="hypergradient", params=RTHOParams, optimizer={"name": "sgd"}, simplicity=220, make=_make,
)
