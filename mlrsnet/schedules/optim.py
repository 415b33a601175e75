"""The base (inner) optimiser of a run: its settings (the ``optimizer`` config section), the overrides a
schedule's declaration gives it, and its construction.

The base optimiser of a run is the ``optimizer`` section with the schedule's overrides filling the keys
left ``null`` there (``optimizer.momentum`` is ``null`` by default): an explicit ``optimizer.momentum=0.5``
applies to every schedule of a run, ``schedule.optimizer.momentum=0.5`` to the chosen one. Under MLR-SNet
(``mlrsnet``, ``mlrsnet_frozen``) the inner SGD has momentum 0, as in the reference code's meta-training and
meta-test; the hand-designed baselines run SGD with momentum 0.9, the paper's "SGDM+..." baselines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from mlrsnet.errors import ConfigError
from mlrsnet.typed import setting

__all__ = ["OptimizerConfig", "build_base_optimizer", "check_betas", "describe_optimizer", "resolve_optimizer"]

# The optimiser keys a null means "the schedule's value", and the value when the schedule gives none.
_FALLBACK = {"momentum": 0.0}


@dataclass
class OptimizerConfig:
    """The ``optimizer`` section."""

    name: str = setting("sgd", "sgd | adam | adamw", choices=("sgd", "adam", "adamw"))
    lr: float = setting(0.1, "initial / fixed LR of the hand-designed schedules (MLR-SNet sets its own)", gt=0)
    momentum: float | None = setting(
        None, "null: the schedule's own (0 under MLR-SNet as in the reference code, 0.9 for the SGDM "
        "baselines); a number here applies to every schedule", ge=0.0, lt=1.0, example="0.9 (or 0 for none)")
    nesterov: bool = setting(False, "Nesterov momentum (SGD)")
    weight_decay: float = setting(5e-4, "L2 weight decay (decoupled for AdamW)", ge=0)
    betas: list[float] = setting([0.9, 0.999], "Adam's betas")
    eps: float = setting(1e-8, "Adam's epsilon", gt=0)

    def check(self, prefix: str) -> None:
        check_betas(f"{prefix}betas", self.betas)


def check_betas(key: str, betas: list[float]) -> None:
    """Adam-style ``betas``: two numbers in [0, 1), else a one-line error naming ``key``."""
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"{key} must be two numbers in [0, 1), got {list(betas)}; set {key}=[0.9,0.999]")


def resolve_optimizer(base: OptimizerConfig, overrides: dict[str, Any]) -> OptimizerConfig:
    """The optimiser a schedule runs with: ``base`` with its null keys filled from the schedule's
    ``overrides``, then from the fallbacks (momentum 0)."""
    values = dataclasses.asdict(base)
    unknown = set(overrides) - set(values)
    if unknown:
        raise ConfigError(f"schedule.optimizer has no key {sorted(unknown)[0]}; it takes "
                          f"{', '.join(values)}")
    for key in {**overrides, **_FALLBACK}:
        if values[key] is None:
            values[key] = overrides[key] if overrides.get(key) is not None else _FALLBACK.get(key)
    return OptimizerConfig(**values)


def build_base_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The base (inner) optimiser, SGD / Adam / AdamW, from a resolved :class:`OptimizerConfig`. On CUDA the
    step is ``fused``: it reads a tensor LR (MLR-SNet's output) on the device, so setting the LR needs no
    host sync. Schedules that replace the optimiser build theirs from it."""
    params = list(params)
    cuda = bool(params) and all(isinstance(p, torch.Tensor) and p.device.type == "cuda" for p in params)
    fused = True if cuda else None
    if cfg.name == "sgd":
        momentum = float(cfg.momentum or 0.0)
        return torch.optim.SGD(params, lr=cfg.lr, momentum=momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov and momentum > 0, fused=fused)
    cls = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay, fused=fused)


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
