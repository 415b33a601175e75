r"""Every schedule as an LR driver of the one training loop (:func:`mlrsnet.engine.loop.train_loop`).

A config selects a schedule by name (``schedule=<name>``); :func:`build_driver` turns the name into
the optimiser to train with and the :class:`~mlrsnet.schedules.base.LRDriver` that sets its LR. Names:

- ``fixed``: the base optimiser's LR, unchanged;
- ``mlrsnet``: MLR-SNet meta-trained in place (it needs the meta engine, so the run builder
  :func:`mlrsnet.engine.build.build_run` builds it, driven by :class:`MLRSNetDriver`, and hands every other name to
  :func:`build_driver`);
- ``mlrsnet_frozen``: a meta-trained MLR-SNet bundle, frozen (:class:`~mlrsnet.schedules.scheduler.MLRSNetScheduler`;
  params ``checkpoint`` (default: the shipped default bundle), ``scale`` (default ``recompute``: the
  paper's gamma at the start and at each swap, from the mean loss over the whole training split in eval
  mode; its perplexity for a language model, per ``gamma_from``) and ``gamma_min``);
- ``rl``: a frozen PPO policy that multiplies the LR every few steps (:class:`mlrsnet.schedules.rl_policy.PolicyDriver`;
  params ``policy`` (a path, or a shipped policy's name; default: the one shipped for the task's family));
- every name of :data:`mlrsnet.schedules.registry.SCHEDULES`, driven according to its kind::

    scheduler              TorchSchedulerDriver: scheduler.step() after every optimizer.step()
    metric_scheduler       MetricDriver: scheduler.step(loss of the batch) after every optimizer.step()
    eval_metric_scheduler  TorchSchedulerDriver: scheduler.step(record[metric_key]) after every evaluation;
                           metric_key defaults to meta_loss, the meta-validation loss (never a test metric)
    eval_loss_scheduler    EvalLossDriver: every eval_interval steps, scheduler.step(loss on the whole
                           meta-validation split), as transformers' Trainer steps a plateau-type scheduler
                           on its eval loss
    tuner                  TunerDriver: tuner.maybe_tune(step, batches) between backward and the step, the
                           probes training on extra batches from task.random_train_batch()
    optimizer              the replacement optimiser under a plain LRDriver (it sets its own LR)
    train_eval_optimizer   TrainEvalDriver: optimizer.eval() before evaluation, optimizer.train() after
    closure_optimizer      ClosureDriver: optimizer.step(closure), the closure recomputing the batch loss
    hypergradient          HypergradientDriver: tuner.step(closure, E) instead of optimizer.step(), E the loss
                           on task.meta_batch() (the meta-validation split) after the step (MARTHE, RTHO)
    loss_optimizer         LossDriver: optimizer.prepare(the batch loss) before optimizer.step() (L4)

``params`` are the schedule's keyword arguments. Where a schedule needs parameters that depend on the
length of the run, :func:`default_params` supplies them relative to the run (``T`` = total steps, ``E`` =
epochs, ``lr0`` = the base LR), so that ``schedule=<name>`` works alone; anything given in ``params``
wins (an ``*_epochs`` or ``gamma_per_epoch`` form replaces the default it stands for)::

    step         step_size = T // 3, gamma = 0.1
    multistep    milestones = [T // 2, 3T // 4], gamma = 0.1
    exponential  gamma = 0.01 ** (1 / T)                        (the LR falls 100x over the run)
    sgdr         T_0 = T // 7, T_mult = 2                         (restarts at T/7, 3T/7)
    plateau      factor = 0.1, patience = max(1, E // 10)
    lrbench      policy = TRI2, k0 = lr0 / 10, k1 = lr0, l = T // 4   (only when no policy is given)
    autolr       interval = steps per epoch, horizon = min(20, steps per epoch // 5)
    sls          n_batches_per_epoch = steps per epoch
    greedy_eval  eval_interval = max(1, steps per epoch // 4), patience = 1, factor = 0.7, reset_start = 0,
                 min_lr = lr / 100, max_lr = 10 lr  (lr: the base LR times the multiplier)

Optimisers that replace the base one take its ``weight_decay`` and, where they have them, its
``momentum``, ``nesterov``, ``betas`` and ``eps``. Their LR (``params["lr"]`` wins) is the base LR for the
SGD family (``sgd_hd``, ``sls``, ``sgd_schedulefree``); for the Adam family (``adam_hd``,
``adamw_schedulefree``) the base LR when the base optimiser is Adam/AdamW, else 1e-3; and 1.0 for the
learning-rate-free ones (``prodigy``, ``dadapt_*``, ``l4``: ``lr`` multiplies their estimated step size).

``safe: true`` in any schedule's ``params`` wraps its driver in :class:`SafeDriver`: every step's LR is clipped to
the task's per-step stability bound (``task.stability_bound``; the NMF tasks have one, see
:mod:`mlrsnet.tasks.nmf`). ``schedule=fixed`` with a very large ``optimizer.lr`` and ``safe: true`` runs at the
bound itself.

``lr_multiplier`` scales the schedule's base LR (what a benchmark tunes): the base optimiser's LR for
the schedules that wrap it (``lrbench``: through each group's ``lr_scale``), the replacement's LR, or
every LR of the frozen MLR-SNet.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from mlrsnet.errors import ConfigError
from mlrsnet.net import MLRSNet, resolve_gamma_from
from mlrsnet.schedules.autolr import AutoLRTuner
from mlrsnet.schedules.base import LRDriver, TorchSchedulerDriver, set_lr
from mlrsnet.schedules.greedy import GreedyLR
from mlrsnet.schedules.marthe import MartheTuner
from mlrsnet.schedules.peers import optimizer_eval, optimizer_train
from mlrsnet.schedules.registry import SCHEDULES, available_schedules, build_optimizer, build_scheduler
from mlrsnet.schedules.scheduler import MLRSNetScheduler, without_scale_warning
from mlrsnet.tasks.base import Task

__all__ = [
    "FIXED", "FROZEN", "META_TRAINED", "RL", "ClosureDriver", "EvalLossDriver", "FrozenMLRSNetDriver",
    "HypergradientDriver", "LossDriver", "MLRSNetDriver", "MetricDriver", "SafeDriver", "TrainEvalDriver",
    "TunerDriver", "build_driver", "check_schedule", "default_params", "schedule_names", "with_safety",
]

FIXED, META_TRAINED, FROZEN, RL = "fixed", "mlrsnet", "mlrsnet_frozen", "rl"
_REPLACING = frozenset({"optimizer", "train_eval_optimizer", "closure_optimizer", "loss_optimizer"})
# Keyword arguments a replacement optimiser takes over from the base optimiser's first param group.
_INHERITED: dict[str, tuple[str, ...]] = {
    "sgd_hd": ("momentum", "weight_decay", "nesterov"),
    "adam_hd": ("betas", "eps", "weight_decay"),
    "sls": (),
    "sgd_schedulefree": ("momentum", "weight_decay"),
    "adamw_schedulefree": ("betas", "eps", "weight_decay"),
    "prodigy": ("betas", "eps", "weight_decay"),
    "dadapt_sgd": ("momentum", "weight_decay"),
    "dadapt_adam": ("betas", "eps", "weight_decay"),
    "l4": ("weight_decay",),
}
_ADAM_FAMILY = frozenset({"adam_hd", "adamw_schedulefree"})
_LR_FREE = frozenset({"prodigy", "dadapt_sgd", "dadapt_adam", "l4"})
# A default in default_params is dropped when params give the alternative form that stands for it.
_ALTERNATIVES = {"step_size": "step_size_epochs", "milestones": "milestones_epochs", "T_0": "T_0_epochs",
                 "gamma": "gamma_per_epoch"}


def schedule_names() -> list[str]:
    """Every name ``schedule=`` accepts."""
    return [FIXED, META_TRAINED, FROZEN, RL, *available_schedules()]


def check_schedule(name: str) -> None:
    """Raise a one-line :class:`~mlrsnet.errors.ConfigError` listing the names if ``name`` is unknown."""
    if name not in schedule_names():
        raise ConfigError(f"unknown schedule {name!r}; use one of: {', '.join(schedule_names())}")


def default_params(name: str, total_steps: int, steps_per_epoch: int, lr0: float) -> dict[str, Any]:
    """The run-relative defaults of schedule ``name`` (the module docstring's table)."""
    t, epochs = total_steps, max(1, total_steps // steps_per_epoch)
    return {
        "step": {"step_size": max(1, t // 3), "gamma": 0.1},
        "multistep": {"milestones": sorted({max(1, t // 2), max(1, 3 * t // 4)}), "gamma": 0.1},
        "exponential": {"gamma": 0.01 ** (1.0 / t)},
        "sgdr": {"T_0": max(1, t // 7), "T_mult": 2},
        "plateau": {"factor": 0.1, "patience": max(1, epochs // 10)},
        "lrbench": {"policy": "TRI2", "k0": lr0 / 10, "k1": lr0, "l": max(1, t // 4)},
        "autolr": {"interval": steps_per_epoch, "horizon": max(1, min(20, steps_per_epoch // 5))},
        "sls": {"n_batches_per_epoch": steps_per_epoch},
        "greedy_eval": {"eval_interval": max(1, steps_per_epoch // 4), "patience": 1, "factor": 0.7,
                        "reset_start": 0},
    }.get(name, {})


class SafeDriver(LRDriver):
    """Any driver, its LR clipped at every step to the task's stability bound for the step's batch
    (:meth:`~mlrsnet.tasks.base.Task.stability_bound`; NMF: :func:`mlrsnet.tasks.nmf.nmf_stability_bound`).

    The clip is applied after the wrapped driver has set the LR (``before_step``), so the loop records the
    clipped LR, and undone after the step where the LR is still the clipped value: a schedule that derives
    its next LR from the current one (torch's chainable schedulers, GreedyLR, the RL policy) carries on from
    its own LR, not from the bound. One host read of the bound per step."""

    def __init__(self, inner: LRDriver, optimizer: Optimizer, task: Task, model: nn.Module) -> None:
        self.inner, self.optimizer, self.task, self.model = inner, optimizer, task, model
        self.name = inner.name
        self.bound: float | None = None
        self._saved: list[tuple[dict, Any, float]] = []

    def before_step(self, loss: torch.Tensor) -> None:
        self.inner.before_step(loss)
        self.bound = self.task.stability_bound(self.model)
        self._saved = []
        if self.bound is None:
            return
        for group in self.optimizer.param_groups:
            lr = group["lr"]
            if float(lr) > self.bound:
                group["lr"] = self.bound
                self._saved.append((group, lr, self.bound))

    def after_step(self, loss: torch.Tensor) -> None:
        for group, lr, clipped in self._saved:
            if group["lr"] == clipped:  # an optimiser that set its own LR during the step keeps it
                group["lr"] = lr
        self._saved = []
        self.inner.after_step(loss)

    def step_optimizer(self, optimizer: Optimizer, closure: Callable[[], torch.Tensor]) -> None:
        self.inner.step_optimizer(optimizer, closure)

    def after_epoch(self, metrics: dict[str, Any]) -> None:
        self.inner.after_epoch(metrics)

    def before_eval(self) -> None:
        self.inner.before_eval()

    def after_eval(self) -> None:
        self.inner.after_eval()

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)

    def scale_lr(self, optimizer: Optimizer, factor: float) -> None:
        self.inner.scale_lr(optimizer, factor)


def with_safety(driver: LRDriver, safe: Any, optimizer: Optimizer, task: Task, model: nn.Module,
                name: str) -> LRDriver:
    """``driver`` wrapped in :class:`SafeDriver` when ``safe`` (the schedule's ``safe`` parameter) is true."""
    if not isinstance(safe, bool):
        raise ConfigError(f"schedule {name}: safe must be true or false, got {safe!r}")
    if not safe:
        return driver
    if type(task).stability_bound is Task.stability_bound:
        raise ConfigError(f"schedule {name}: safe=true needs a task with a stability bound (the NMF tasks); "
                          f"task {task.info.name} has none, set safe=false")
    return SafeDriver(driver, optimizer, task, model)


def _with_defaults(name: str, params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    if name == "lrbench" and "policy" in params:
        return dict(params)
    kept = {k: v for k, v in defaults.items() if k not in params and _ALTERNATIVES.get(k) not in params}
    return {**kept, **params}


class MLRSNetDriver(LRDriver):
    """LR from an MLR-SNet: lr_t = MLR-SNet(loss_t / loss_scale), state carried and detached."""

    name = "mlrsnet"

    def __init__(self, net: MLRSNet, optimizer: torch.optim.Optimizer, loss_scale: float = 1.0) -> None:
        self.net = net
        self.optimizer = optimizer
        self.loss_scale = loss_scale

    def before_step(self, loss: torch.Tensor) -> None:
        set_lr(self.optimizer, self.net.step(loss.detach() / self.loss_scale))

    def state_dict(self) -> dict:
        return {"state": self.net.state}

    def load_state_dict(self, state: dict) -> None:
        carried = state["state"]
        device = self.net.head.weight.device
        self.net.state = None if carried is None else (carried[0].to(device), carried[1].to(device))

    def scale_lr(self, optimizer: torch.optim.Optimizer, factor: float) -> None:
        """Scale MLR-SNet's output scale gamma, the upper bound of the LRs it emits."""
        self.net.set_gamma(float(self.net.gamma) * factor)


class FrozenMLRSNetDriver(LRDriver):
    """A frozen MLR-SNet in :func:`~mlrsnet.engine.loop.train_loop`, with the paper's timing: the LR of step t
    comes from the loss of step t (set after ``backward()``, before ``optimizer.step()``).

    The net being meta-trained is driven by :class:`MLRSNetDriver` instead, because its
    LSTM state is shared with the meta engine.
    """

    name = "mlrsnet"

    def __init__(self, scheduler: MLRSNetScheduler) -> None:
        self.scheduler = scheduler

    def before_step(self, loss: torch.Tensor) -> None:
        self.scheduler.step(loss)

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


class MetricDriver(LRDriver):
    """Steps a metric-driven scheduler (GreedyLR) with the training loss of every batch, after the step
    (one host read of the loss per step)."""

    def __init__(self, scheduler: GreedyLR, name: str) -> None:
        self.scheduler = scheduler
        self.name = name

    def after_step(self, loss: torch.Tensor) -> None:
        self.scheduler.step(float(loss.detach()))

    def state_dict(self) -> dict:
        return {"scheduler": copy.deepcopy(self.scheduler.state_dict())}

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(copy.deepcopy(state["scheduler"]))


class EvalLossDriver(LRDriver):
    """Steps a metric-driven scheduler (GreedyLR) with the loss on the task's whole meta-validation split,
    measured every ``eval_interval`` steps after ``optimizer.step()`` (eval mode, no gradients; the data
    order and the test split are untouched)."""

    def __init__(self, scheduler: GreedyLR, task: Task, model: nn.Module, eval_interval: int, name: str) -> None:
        if eval_interval < 1:
            raise ConfigError(f"schedule {name}: eval_interval={eval_interval} must be >= 1")
        self.scheduler = scheduler
        self.task = task
        self.model = model
        self.eval_interval = int(eval_interval)
        self.name = name
        self.step = 0

    def after_step(self, loss: torch.Tensor) -> None:
        self.step += 1
        if self.step % self.eval_interval == 0:
            self.scheduler.step(self.task.evaluate(self.model, "meta")["loss"])

    def state_dict(self) -> dict:
        return {"step": self.step, "scheduler": copy.deepcopy(self.scheduler.state_dict())}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.scheduler.load_state_dict(copy.deepcopy(state["scheduler"]))


class TunerDriver(LRDriver):
    """Calls :meth:`AutoLRTuner.maybe_tune` at every step, after the backward pass and before the step
    (the tuner restores the gradients it finds). Probe batches come from ``task.random_train_batch()``,
    which draws from the task's meta generator, so the run's own data order is unchanged; they are drawn
    only when the tuner tunes."""

    name = "autolr"

    def __init__(self, tuner: AutoLRTuner, task: Task) -> None:
        self.tuner = tuner
        self.task = task
        self.step = 0

    def before_step(self, loss: torch.Tensor) -> None:
        batches = (self.task.random_train_batch() for _ in range(self.tuner.horizon))
        self.tuner.maybe_tune(self.step, batches)
        self.step += 1

    def state_dict(self) -> dict:
        return {"step": self.step, "tuner": self.tuner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.tuner.load_state_dict(state["tuner"])


class TrainEvalDriver(LRDriver):
    """A schedule-free optimiser: the model holds the training point ``y`` while training and the
    averaged point ``x`` while it is evaluated."""

    def __init__(self, optimizer: Optimizer, name: str) -> None:
        self.optimizer = optimizer
        self.name = name
        optimizer_train(optimizer)

    def before_eval(self) -> None:
        optimizer_eval(self.optimizer)

    def after_eval(self) -> None:
        optimizer_train(self.optimizer)


class ClosureDriver(LRDriver):
    """A line search: ``optimizer.step(closure)``. The loop records a step's LR before the step, so the
    LR logged for step t is the step size accepted at step t - 1."""

    def __init__(self, name: str) -> None:
        self.name = name

    def step_optimizer(self, optimizer: Optimizer, closure: Callable[[], torch.Tensor]) -> None:
        optimizer.step(closure)


class LossDriver(LRDriver):
    """An optimiser whose step size comes from the batch loss (L4): ``optimizer.prepare(loss)`` before
    the step (so the step size logged for step t is step t's), then ``optimizer.step()``."""

    def __init__(self, optimizer: Optimizer, name: str) -> None:
        self.optimizer = optimizer
        self.name = name

    def before_step(self, loss: torch.Tensor) -> None:
        self.optimizer.prepare(loss.detach())


class HypergradientDriver(LRDriver):
    """MARTHE / RTHO: the tuner takes the optimiser step, then updates the LR from the hypergradient of
    the loss E on a batch of the meta-validation split (``task.meta_batch()``, drawn from the task's meta
    generator, so the run's own data order is unchanged; never the test split)."""

    def __init__(self, tuner: MartheTuner, task: Task, model: nn.Module, name: str) -> None:
        self.tuner = tuner
        self.task = task
        self.model = model
        self.name = name

    def _val_loss(self) -> torch.Tensor:
        return self.task.loss(self.model, self.task.meta_batch())

    def step_optimizer(self, optimizer: Optimizer, closure: Callable[[], torch.Tensor]) -> None:
        self.tuner.step(closure, self._val_loss)

    def state_dict(self) -> dict:
        return {"tuner": self.tuner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.tuner.load_state_dict(state["tuner"])

    def scale_lr(self, optimizer: Optimizer, factor: float) -> None:
        super().scale_lr(optimizer, factor)
        self.tuner.eta *= factor


def _replacement(name: str, base: Optimizer, model: nn.Module, params: dict[str, Any],
                 lr_multiplier: float) -> Optimizer:
    group = base.param_groups[0]
    if "lr" in params:
        lr = float(params.pop("lr"))
    elif name in _LR_FREE:
        lr = 1.0
    elif name in _ADAM_FAMILY and "betas" not in group:
        lr = 1e-3
    else:
        lr = float(group["lr"])
    inherited = {k: group[k] for k in _INHERITED[name] if k in group and k not in params}
    return build_optimizer(name, model.parameters(), lr * lr_multiplier, **inherited, **params)


def build_driver(name: str, optimizer: Optimizer, model: nn.Module, task: Task, *, total_steps: int,
                 steps_per_epoch: int, params: dict[str, Any] | None = None,
                 lr_multiplier: float = 1.0) -> tuple[Optimizer, LRDriver]:
    """The optimiser to train ``model`` with and the LR driver of schedule ``name`` (see the module
    docstring), for a run of ``total_steps`` steps. ``optimizer`` is the base optimiser over
    ``model``'s parameters; schedules that wrap it change its LR in place, the others replace it.
    ``params["safe"]`` clips the LR to the task's stability bound (:class:`SafeDriver`)."""
    params = dict(params or {})
    safe = params.pop("safe", False)
    optimizer, driver = _build_driver(name, optimizer, model, task, total_steps=total_steps,
                                      steps_per_epoch=steps_per_epoch, params=params, lr_multiplier=lr_multiplier)
    return optimizer, with_safety(driver, safe, optimizer, task, model, name)


def _build_driver(name: str, optimizer: Optimizer, model: nn.Module, task: Task, *, total_steps: int,
                  steps_per_epoch: int, params: dict[str, Any], lr_multiplier: float) -> tuple[Optimizer, LRDriver]:
    check_schedule(name)
    if name == META_TRAINED:
        raise ConfigError("schedule mlrsnet is meta-trained in place; build it with "
                          "mlrsnet.engine.build.build_schedule")
    if not lr_multiplier > 0:
        raise ConfigError(f"the LR multiplier must be positive, got {lr_multiplier}")
    lr0 = float(optimizer.param_groups[0]["lr"])
    kw = _with_defaults(name, dict(params or {}), default_params(name, total_steps, steps_per_epoch, lr0))
    kind = SCHEDULES[name].kind if name in SCHEDULES else None
    if kind in _REPLACING:
        optimizer = _replacement(name, optimizer, model, kw, lr_multiplier)
        if kind == "train_eval_optimizer":
            return optimizer, TrainEvalDriver(optimizer, name)
        if kind == "closure_optimizer":
            return optimizer, ClosureDriver(name)
        if kind == "loss_optimizer":
            return optimizer, LossDriver(optimizer, name)
        driver = LRDriver()
        driver.name = name
        return optimizer, driver
    for group in optimizer.param_groups:
        if name == "lrbench":
            group["lr_scale"] = group.get("lr_scale", 1.0) * lr_multiplier
        else:
            group["lr"] = float(group["lr"]) * lr_multiplier
    if name == FIXED:
        if kw:
            raise ConfigError(f"schedule fixed takes no parameters, got {', '.join(sorted(kw))}")
        return optimizer, LRDriver()
    if name == FROZEN:
        return optimizer, _frozen(optimizer, model, task, total_steps, kw, lr_multiplier)
    if name == RL:
        from mlrsnet.schedules.rl_policy import build_policy_driver

        return optimizer, build_policy_driver(optimizer, model, task, total_steps, kw)
    if kind == "eval_metric_scheduler":
        metric_key = str(kw.pop("metric_key", "meta_loss"))
        if metric_key.startswith("test_"):
            raise ConfigError(f"schedule {name}: metric_key={metric_key} would tune on the test split; use a "
                              "meta_* (meta-validation) or train_loss key")
        scheduler = build_scheduler(name, optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch, **kw)
        return optimizer, TorchSchedulerDriver(scheduler, name, metric_key)
    if kind == "eval_loss_scheduler":
        kw = {k: v for k, v in kw.items() if v is not None}  # null in conf/schedule: the run-relative default
        lr = float(optimizer.param_groups[0]["lr"])
        kw.setdefault("min_lr", lr / 100)
        kw.setdefault("max_lr", lr * 10)
        interval = int(kw.pop("eval_interval", max(1, steps_per_epoch // 4)))
        scheduler = build_scheduler(name, optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch, **kw)
        return optimizer, EvalLossDriver(scheduler, task, model, interval, name)
    if kind == "metric_scheduler":
        scheduler = build_scheduler(name, optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch, **kw)
        return optimizer, MetricDriver(scheduler, name)
    if kind == "hypergradient":
        tuner = build_scheduler(name, optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch, **kw)
        return optimizer, HypergradientDriver(tuner, task, model, name)
    if kind == "tuner":
        tuner = build_scheduler(name, optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                                model=model, loss_fn=task.loss, **kw)
        return optimizer, TunerDriver(tuner, task)
    scheduler = build_scheduler(name, optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch, **kw)
    return optimizer, TorchSchedulerDriver(scheduler, name)


def _frozen(optimizer: Optimizer, model: nn.Module, task: Task, total_steps: int, kw: dict[str, Any],
            lr_multiplier: float) -> FrozenMLRSNetDriver:
    checkpoint, scale = kw.pop("checkpoint", None), kw.pop("scale", "recompute")
    gamma_min = float(kw.pop("gamma_min", None) or 0.0)
    gamma_from = kw.pop("gamma_from", None) or "auto"
    try:
        gamma_from = resolve_gamma_from(gamma_from, task.info.metric)
    except ValueError as err:
        raise ConfigError(f"schedule {FROZEN}: {err}; set gamma_from=auto") from None
    if kw:
        raise ConfigError(f"schedule {FROZEN}: unexpected parameter(s) {', '.join(sorted(kw))}; it takes "
                          "checkpoint, scale, gamma_min and gamma_from")
    if scale == "checkpoint" and lr_multiplier != 1.0:
        raise ConfigError(f"schedule {FROZEN}: scale=checkpoint cannot be multiplied by {lr_multiplier:g}; "
                          "give scale=recompute or a numeric scale, or turn LR tuning off")
    try:
        with without_scale_warning():  # run.build_schedule warns in its own words, naming schedule.scale
            scheduler = MLRSNetScheduler(
                optimizer, checkpoint, total_steps=total_steps, scale=scale, num_classes=task.info.num_classes,
                loss_scale=task.info.loss_scale, train_loss=lambda: float(task.evaluate(model, "train")["loss"]),
                gamma_min=gamma_min, lr_factor=lr_multiplier if scale != "checkpoint" else 1.0, gamma_from=gamma_from,
            )
    except ValueError as err:
        raise ConfigError(f"schedule {FROZEN}: {err}") from None
    return FrozenMLRSNetDriver(scheduler)
