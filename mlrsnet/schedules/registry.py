"""Every schedule by the name a config uses (``schedule=<name>``), found in :mod:`mlrsnet.schedules.catalog`:
one module per schedule, each holding its declaration ``SCHEDULE`` (:class:`mlrsnet.schedules.spec.Schedule`).

Everything else is derived from the declarations: the names (:func:`schedule_names`), the ``schedule`` config
group (:func:`register_schedule_configs`: one ConfigStore node per schedule, its name, its optimiser overrides and its
parameters' defaults; ``schedule=cosine schedule.eta_min=0.001``), the simplicity order of FastSpiker's
selection (:func:`simplicity_order`), the typed parameters (:func:`parse_params`) and the builders:
:func:`build` (what a run trains with) and, for a hand-written training loop, :func:`build_scheduler` /
:func:`build_optimizer` (the schedule's object itself; :func:`describe_schedule` says how to drive it).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.drivers import KINDS, REPLACING, build_kind, with_safety
from mlrsnet.schedules.spec import BuildContext, Built, Schedule, ScheduleParams, given_params
from mlrsnet.tasks.base import Task
from mlrsnet.typed import defaults, parse

__all__ = ["CATALOG", "build", "build_driver", "build_optimizer", "build_scheduler", "describe_schedule",
           "get_schedule", "params_as_dict", "parse_params", "register_schedule_configs", "schedule_names",
           "schedule_node", "schedules", "simplicity_order"]

CATALOG = "mlrsnet.schedules.catalog"


@cache
def schedules() -> dict[str, Schedule]:
    """Every declared schedule, by name (the modules of :mod:`mlrsnet.schedules.catalog`)."""
    package = importlib.import_module(CATALOG)
    found: dict[str, Schedule] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # what several declarations share
            continue
        module = importlib.import_module(f"{CATALOG}.{info.name}")
        decl = getattr(module, "SCHEDULE", None)
        if not isinstance(decl, Schedule):
            raise TypeError(f"{CATALOG}.{info.name} declares no SCHEDULE = Schedule(...)")
        if decl.name in found:
            raise TypeError(f"schedule {decl.name!r} is declared twice ({CATALOG}.{info.name})")
        if decl.kind not in KINDS:
            raise TypeError(f"schedule {decl.name!r}: unknown kind {decl.kind!r}")
        found[decl.name] = decl
    return found


def schedule_names() -> list[str]:
    """Every name ``schedule=`` accepts, sorted."""
    return sorted(schedules())


def get_schedule(name: str) -> Schedule:
    """The declaration of ``name``; an unknown name is a one-line error listing the names."""
    found = schedules().get(str(name))
    if found is None:
        raise ConfigError(f"unknown schedule {name!r}; use one of: {', '.join(schedule_names())}")
    return found


def simplicity_order() -> tuple[str, ...]:
    """Every schedule from the simplest to the most complex (FastSpiker's tie-break,
    :mod:`mlrsnet.engine.selection`)."""
    return tuple(sorted(schedules(), key=lambda n: (schedules()[n].simplicity, n)))


def describe_schedule(name: str) -> str:
    """One line: the summary, how to drive it, and the reference."""
    decl = get_schedule(name)
    return f"{name}: {decl.summary}. Protocol: {KINDS[decl.kind]}. Reference: {decl.reference}."


def schedule_node(name: str) -> dict[str, Any]:
    """The ``schedule`` config group's entry for ``name``: ``{name, optimizer: <overrides>, <param>: <default>}``
    (a null default: run-relative, or the implementation's own)."""
    decl = get_schedule(name)
    return {"name": name, "optimizer": dict(decl.optimizer), **defaults(decl.params)}


def register_schedule_configs() -> None:
    """Store :func:`schedule_node` of every schedule in Hydra's ConfigStore as ``schedule/<name>``: what
    ``schedule=<name>`` composes (there are no YAML files to keep in sync)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name in schedules():
        store.store(group="schedule", name=name, node=schedule_node(name))


def parse_params(name: str, params: dict[str, Any] | None, prefix: str = "schedule.") -> ScheduleParams:
    """``params`` (a schedule's keys without ``name`` and ``optimizer``) as its typed parameter object:
    defaults filled, types converted, ranges checked; each error names ``prefix`` + the key."""
    return parse(get_schedule(name).params, dict(params or {}), prefix)


def build(name: str, ctx: BuildContext, params: ScheduleParams | None = None) -> Built:
    """Schedule ``name`` with ``params`` (default: its defaults) for the run of ``ctx``: the optimiser to train
    with, the LR driver, what the run records about it; ``params.safe`` clips its LR to the task's stability
    bound."""
    decl = get_schedule(name)
    params = decl.params() if params is None else params
    if not ctx.lr_multiplier > 0:
        raise ConfigError(f"the LR multiplier must be positive, got {ctx.lr_multiplier}")
    if decl.build is not None:
        built = decl.build(ctx, params)
    else:
        given = given_params(params)
        optimizer, driver = build_kind(decl, ctx, {**decl.run_defaults(ctx, given), **given})
        built = Built(optimizer, driver)
    built.driver = with_safety(built.driver, params.safe, built.optimizer, ctx.task, ctx.model, name)
    return built


def build_driver(name: str, optimizer: Optimizer, model: nn.Module, task: Task, *, total_steps: int,
                 steps_per_epoch: int, params: dict[str, Any] | None = None,
                 lr_multiplier: float = 1.0) -> tuple[Optimizer, Any]:
    """The optimiser and LR driver of schedule ``name`` with ``params`` (a mapping) for a run of
    ``total_steps`` steps over ``model``; ``optimizer`` is the base optimiser. A shortcut of :func:`build`."""
    if get_schedule(name).kind == "meta_trained":
        raise ConfigError(f"schedule {name} is meta-trained in place and needs the run's net and meta settings; "
                          "build its run with mlrsnet.engine.build.build_run (python -m mlrsnet.train)")
    ctx = BuildContext(optimizer, model, task, total_steps, steps_per_epoch, lr_multiplier)
    built = build(name, ctx, parse_params(name, params))
    return built.optimizer, built.driver


def build_scheduler(name: str, optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int,
                    model: nn.Module | None = None,
                    loss_fn: Callable[[nn.Module, Any], torch.Tensor] | None = None, **params: Any) -> Any:
    """The object of a schedule that wraps ``optimizer`` (kinds scheduler, metric_scheduler,
    eval_metric_scheduler, eval_loss_scheduler, tuner, hypergradient), for a hand-written training loop;
    ``params`` are its own keyword arguments (no run-relative defaults). ``autolr`` also needs ``model``
    and ``loss_fn(model, batch)``."""
    decl = get_schedule(name)
    if decl.kind in REPLACING or decl.make is None:
        raise ConfigError(f"schedule {name} (kind {decl.kind}) is not built with build_scheduler; "
                          + ("build it with build_optimizer instead" if decl.kind in REPLACING else
                             "use schedule=" + name + " in mlrsnet.train"))
    extra = {"model": model, "loss_fn": loss_fn} if decl.kind == "tuner" else {}
    if decl.kind == "tuner" and (model is None or loss_fn is None):
        raise ConfigError(f"schedule {name} needs the model and loss_fn(model, batch); pass both")
    try:
        return decl.make(optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch, **extra, **params)
    except TypeError as err:
        raise ConfigError(f"schedule {name}: bad parameters ({err}); fix them") from err


def build_optimizer(name: str, params: Iterable[Any], lr: float, **kw: Any) -> Optimizer:
    """The replacement optimiser of schedule ``name`` (kinds optimizer, train_eval_optimizer, closure_optimizer,
    loss_optimizer) over ``params`` with initial LR (or step size, or LR multiplier) ``lr``."""
    decl = get_schedule(name)
    if decl.kind not in REPLACING or decl.make is None:
        raise ConfigError(f"schedule {name} wraps an optimizer (kind {decl.kind}); build it with "
                          "build_scheduler instead of build_optimizer")
    try:
        return decl.make(params, lr, **kw)
    except TypeError as err:
        raise ConfigError(f"schedule {name}: bad parameters ({err}); fix them") from err


def params_as_dict(params: ScheduleParams) -> dict[str, Any]:
    """The parameters given a value, ``safe`` included where set: what a run records."""
    out = given_params(params)
    if params.safe:
        out["safe"] = True
    return out
