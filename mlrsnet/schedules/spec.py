"""What a schedule is: one self-describing declaration (:class:`Schedule`), one module of
:mod:`mlrsnet.schedules.catalog` per schedule.

A declaration holds everything the rest of the package needs to know about a schedule::

    name         the schedule= name
    params       its parameter class (a dataclass of typed settings, mlrsnet.typed): defaults, ranges, help.
                 A field left at None is "run-relative" or "the implementation's own default": the
                 declaration's `defaults` fills it from the run's length
    defaults     (run, given) -> the run-relative defaults (e.g. multistep: milestones at T/2 and 3T/4)
    optimizer    overrides of the base optimiser it runs with ({momentum: 0.9} for the SGDM baselines)
    kind         how a training loop drives it (mlrsnet.schedules.drivers.KINDS)
    make         the object itself: a torch scheduler, a tuner, or a replacement optimiser
    build        for the schedules the kinds do not cover (fixed, mlrsnet, mlrsnet_frozen, rl): the whole build
    simplicity   its rank from simple to complex (FastSpiker's selection prefers the simpler of two ties)
    search       its search space for tuning: {parameter: Range}; "lr" is the multiplier of its base LR
    summary, reference

:mod:`mlrsnet.schedules.registry` finds the declarations, and from them alone derives the names ``schedule=``
accepts, the ``schedule`` config group (Hydra's ConfigStore, ``schedule=NAME``), the simplicity order and
the builders. Adding a schedule is adding a module to :mod:`mlrsnet.schedules.catalog`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from mlrsnet.schedules.base import LRDriver
from mlrsnet.tasks.base import Task
from mlrsnet.typed import setting

__all__ = ["BuildContext", "Built", "Range", "Schedule", "ScheduleParams", "given_params", "with_defaults"]


@dataclass
class ScheduleParams:
    """The parameters every schedule takes; each schedule's class extends it."""

    safe: bool = setting(False, "clip every step's LR to the task's stability bound (the NMF tasks have one)")


@dataclass(frozen=True)
class Range:
    """One dimension of a search space: ``low`` to ``high``, on a log scale where ``log``."""

    low: float
    high: float
    log: bool = True


@dataclass
class BuildContext:
    """What a schedule is built for: the base optimiser over ``model``'s parameters (built from the run's
    ``optimizer`` section and the schedule's overrides), the task, the run's length, the multiplier of the
    schedule's base LR (what a benchmark tunes), and, for MLR-SNet, the run's ``net`` and ``meta`` settings,
    its initial loss L0, its seed and gradient clipping."""

    optimizer: Optimizer
    model: nn.Module
    task: Task
    total_steps: int
    steps_per_epoch: int
    lr_multiplier: float = 1.0
    l0: float = float("nan")
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    net: Any = None  # mlrsnet.net.NetConfig of the run (schedule=mlrsnet)
    meta: Any = None  # mlrsnet.meta.engine.MetaConfig of the run (schedule=mlrsnet)
    grad_clip: float | None = None
    gamma_key: str = "schedule.gamma"  # the key that sets a frozen MLR-SNet's gamma, for warnings

    @property
    def epochs(self) -> int:
        return max(1, self.total_steps // self.steps_per_epoch)

    @property
    def base_lr(self) -> float:
        """The base optimiser's LR (before the multiplier)."""
        return float(self.optimizer.param_groups[0]["lr"])


@dataclass
class Built:
    """A built schedule: the optimiser to train with (the base one, or its replacement), the LR driver of
    the training loop, for a meta-trained MLR-SNet the net and its meta engine, and what a run records about
    the schedule (``info``)."""

    optimizer: Optimizer
    driver: LRDriver
    net: Any = None
    engine: Any = None
    info: dict = field(default_factory=dict)


def given_params(params: ScheduleParams) -> dict[str, Any]:
    """The parameters given a value (not None), ``safe`` left out: the keyword arguments of the schedule's
    implementation."""
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)
            if f.name != "safe" and getattr(params, f.name) is not None}


def with_defaults(given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``given`` on top of the run-relative ``defaults``."""
    return {**defaults, **given}


Make = Callable[..., Any]
Defaults = Callable[[BuildContext, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Schedule:
    """A schedule's declaration (the module docstring)."""

    name: str
    summary: str
    reference: str
    kind: str
    params: type[ScheduleParams] = ScheduleParams
    optimizer: dict[str, Any] = field(default_factory=dict)
    simplicity: int = 100
    search: dict[str, Range] = field(default_factory=lambda: {"lr": Range(0.1, 10.0)})
    defaults: Defaults | None = None
    make: Make | None = None
    build: Callable[[BuildContext, ScheduleParams], Built] | None = None
    # Replacement optimisers: the keys taken over from the base optimiser's group, and the LR when none is given:
    # "base" (the base LR), "adam" (1e-3 unless the base optimiser is Adam or AdamW) or a number.
    inherits: tuple[str, ...] = ()
    default_lr: str | float = "base"
    # The schedule reads the initial loss L0 (MLR-SNet's gamma): measured over ``net.l0_over`` (by default the
    # whole training split). The other schedules get a cheap estimate, 4 training batches, for the divergence
    # guard only (``guard.max_loss_factor``).
    needs_l0: bool = False

    def __post_init__(self) -> None:
        if (self.make is None) == (self.build is None):
            raise ValueError(f"schedule {self.name}: declare exactly one of make and build")

    def run_defaults(self, ctx: BuildContext, given: dict[str, Any]) -> dict[str, Any]:
        """The run-relative defaults of the parameters ``given`` leaves open."""
        return {} if self.defaults is None else self.defaults(ctx, given)
