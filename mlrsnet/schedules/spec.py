"""The ``schedule`` config group: every schedule's parameters and the optimiser it runs with.

One file per schedule, ``conf/schedule/<name>.yaml`` (shipped as ``mlrsnet.conf``)::

    name: <name>                 # the schedule= name
    optimizer: {momentum: 0.9}   # overrides of the base optimiser this schedule runs with (may be {})
    <param>: <value>             # every other key is a keyword parameter (null = run-relative default)

On the command line the group is chosen and edited as Hydra does it: ``schedule=cosine
schedule.eta_min=0.001``. Under MLR-SNet (``mlrsnet``, ``mlrsnet_frozen``) the inner SGD has momentum 0,
as in the reference code's meta-training and meta-test; the hand-designed baselines run SGD with
momentum 0.9, the paper's "SGDM+..." baselines.

The base optimiser of a run is the ``optimizer`` section with the schedule's overrides filling the keys
left ``null`` there (``optimizer.momentum`` is ``null`` by default): an explicit
``optimizer.momentum=0.5`` applies to every schedule of a run, ``schedule.optimizer.momentum=0.5`` to
the chosen one. A benchmark or a transfer comparison runs every other schedule it names under that
schedule's own file; ``schedule_params.<name>.<key>=value`` overrides a listed schedule's parameters
(and is the deprecated alias of ``schedule.<key>`` for the chosen one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import torch

from mlrsnet.errors import ConfigError

__all__ = ["ScheduleSpec", "describe_optimizer", "resolve_optimizer", "schedule_file", "schedule_name",
           "schedule_spec"]

_RESERVED = ("name", "optimizer")
# The optimiser keys a null means "the schedule's value", and the value when the schedule gives none.
_FALLBACK = {"momentum": 0.0}


@cache
def _read_file(name: str) -> dict | None:
    from omegaconf import OmegaConf

    path = resources.files("mlrsnet.conf") / "schedule" / f"{name}.yaml"
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=True)  # type: ignore[return-value]


def schedule_file(name: str) -> dict:
    """The contents of ``conf/schedule/<name>.yaml`` (a copy); a schedule without a file runs with the
    base optimiser as it is and its built-in defaults."""
    data = _read_file(str(name))
    return {"name": str(name), "optimizer": {}} if data is None else {**data, "optimizer": dict(data.get("optimizer")
                                                                                            or {})}


def schedule_name(cfg: dict) -> str:
    """The chosen schedule's name: ``cfg["schedule"]`` is the composed group (a dict with ``name``) or,
    from Python, just the name."""
    value = cfg.get("schedule", "mlrsnet")
    if isinstance(value, dict):
        if "name" not in value:
            raise ConfigError("schedule has no name; choose one with schedule=NAME (conf/schedule/NAME.yaml)")
        return str(value["name"])
    return str(value)


@dataclass
class ScheduleSpec:
    """A schedule as a run uses it: its name, its optimiser overrides and its keyword parameters (the
    null ones left out, so that the run-relative defaults of :mod:`mlrsnet.schedules.drivers` apply)."""

    name: str
    optimizer: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


def schedule_spec(cfg: dict, name: str | None = None) -> ScheduleSpec:
    """The spec of schedule ``name`` (default: the chosen one) in run config ``cfg``: the chosen
    schedule's composed group, or any other schedule's own file; ``schedule_params[name]`` on top."""
    chosen = cfg.get("schedule", "mlrsnet")
    name = schedule_name(cfg) if name is None else str(name)
    if isinstance(chosen, dict) and str(chosen.get("name")) == name:
        entry = dict(chosen)
    else:
        entry = schedule_file(name)
    legacy = (cfg.get("schedule_params") or {})
    if not isinstance(legacy, dict):
        raise ConfigError("schedule_params must map schedule names to their parameters, e.g. "
                          "+schedule_params.step.gamma=0.5")
    extra = dict(legacy.get(name) or {})
    optimizer = entry.get("optimizer") or {}
    if not isinstance(optimizer, dict):
        raise ConfigError(f"schedule.optimizer must be a mapping of optimiser keys, got {optimizer!r}; e.g. "
                          "schedule.optimizer.momentum=0.9")
    optimizer = {**optimizer, **dict(extra.pop("optimizer", None) or {})}
    params = {k: v for k, v in {**entry, **extra}.items() if k not in _RESERVED and v is not None}
    return ScheduleSpec(name, optimizer, params)


def resolve_optimizer(base: dict, overrides: dict) -> dict:
    """The optimiser section a schedule runs with: ``base`` (the config's ``optimizer``) with its null keys
    filled from the schedule's ``overrides``, then from the fallbacks (momentum 0)."""
    out = dict(base)
    for key, value in overrides.items():
        if out.get(key) is None:
            out[key] = value
    for key, value in _FALLBACK.items():
        if out.get(key) is None:
            out[key] = value
    return out


def describe_optimizer(optimizer: torch.optim.Optimizer) -> str:
    """A short description of the optimiser a run trained with, for result tables: ``SGD(momentum=0,
    wd=0.0005)``, ``Adam(betas=(0.9, 0.999), wd=0)``..."""
    group = optimizer.param_groups[0]
    parts = []
    if "momentum" in group:
        parts.append(f"momentum={group['momentum']:g}")
    if group.get("nesterov"):
        parts.append("nesterov")
    if "betas" in group:
        parts.append(f"betas=({group['betas'][0]:g}, {group['betas'][1]:g})")
    if "weight_decay" in group:
        parts.append(f"wd={group['weight_decay']:g}")
    return f"{type(optimizer).__name__}({', '.join(parts)})"
