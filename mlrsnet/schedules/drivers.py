r"""The LR drivers of the one training loop (:func:`mlrsnet.engine.loop.train_loop`), one per way of
driving a schedule (:data:`KINDS`), and :func:`build_kind`, which builds any declared schedule
(:class:`mlrsnet.schedules.spec.Schedule`) of one of those kinds::

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

The rest (a fixed LR, MLR-SNet meta-trained in place or frozen, an RL policy) declare their own build and
use the drivers here (:class:`MLRSNetDriver`, :class:`FrozenMLRSNetDriver`) or
:class:`mlrsnet.schedules.rl_policy.AgentDriver`.

Optimisers that replace the base one take over the keys their declaration ``inherits`` from the base
optimiser's first param group (its ``weight_decay``, ``momentum``, ``betas``...). Their LR (``lr`` given
wins) is the declaration's ``default_lr``: the base LR (``base``), 1e-3 unless the base optimiser is Adam
or AdamW (``adam``), or a number (1.0 for the learning-rate-free ones, where ``lr`` multiplies their
estimated step size).

``safe: true`` in any schedule's parameters wraps its driver in :class:`SafeDriver`: every step's LR is
clipped to the task's per-step stability bound (``task.stability_bound``; the NMF tasks have one, see
:mod:`mlrsnet.tasks.nmf`).

``lr_multiplier`` scales the schedule's base LR (what a benchmark tunes): the base optimiser's LR for
the schedules that wrap it (``lrbench``: through each group's ``lr_scale``), the replacement's LR, or
every LR of MLR-SNet (its gamma).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from mlrsnet.errors import ConfigError
from mlrsnet.net import MLRSNet
from mlrsnet.schedules.autolr import AutoLRTuner
from mlrsnet.schedules.base import LRDriver, TorchSchedulerDriver, set_lr
from mlrsnet.schedules.greedy import GreedyLR
from mlrsnet.schedules.marthe import MartheTuner
from mlrsnet.schedules.peers import optimizer_eval, optimizer_train
from mlrsnet.schedules.scheduler import MLRSNetScheduler
from mlrsnet.schedules.spec import BuildContext, Schedule
from mlrsnet.tasks.base import Task

__all__ = [
    "KINDS", "ClosureDriver", "EvalLossDriver", "FrozenMLRSNetDriver", "HypergradientDriver", "LossDriver",
    "MLRSNetDriver", "MetricDriver", "REPLACING", "SafeDriver", "TrainEvalDriver", "TunerDriver", "build_kind",
    "replacement_optimizer", "with_safety",
]

KINDS: dict[str, str] = {
    "fixed": "leaves the optimizer's LR alone",
    "scheduler": "wraps the optimizer; call scheduler.step() after every optimizer.step()",
    "metric_scheduler": "wraps the optimizer; call scheduler.step(train_loss) after every optimizer.step()",
    "eval_metric_scheduler": "wraps the optimizer; call scheduler.step(val_metric) after every evaluation",
    "eval_loss_scheduler": (
        "wraps the optimizer; call scheduler.step(eval_loss) after every evaluation on held-out data, every "
        "eval_interval iterations"
    ),
    "loss_scheduler": (
        "wraps the optimizer; call scheduler.step(loss of the current mini-batch) after backward(), before "
        "optimizer.step()"
    ),
    "meta_trained": "meta-trained in place by a meta engine while the task trains (python -m mlrsnet.train)",
    "policy": "a frozen RL policy multiplies the LR every few steps, from the loss and the gradient norm",
    "tuner": "wraps optimizer and model; call tuner.maybe_tune(step, batches) before every iteration",
    "optimizer": "replaces the base optimizer; call optimizer.step() as usual",
    "train_eval_optimizer": (
        "replaces the base optimizer; call optimizer.step(), plus peers.optimizer_train() before training "
        "and peers.optimizer_eval() before evaluating or saving"
    ),
    "closure_optimizer": (
        "replaces the base optimizer; call optimizer.step(closure), the closure returning the loss of the "
        "current mini-batch without backward()"
    ),
    "hypergradient": (
        "wraps an SGD optimizer; call tuner.step(train_loss, val_loss) instead of optimizer.step(), "
        "train_loss() the loss of the current mini-batch, val_loss() the loss of a meta-validation batch"
    ),
    "loss_optimizer": (
        "replaces the base optimizer; call optimizer.prepare(loss of the current mini-batch) after "
        "backward(), then optimizer.step() (or optimizer.step(loss=loss))"
    ),
}
REPLACING = frozenset({"optimizer", "train_eval_optimizer", "closure_optimizer", "loss_optimizer"})


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

    def info(self) -> dict[str, Any]:
        return self.inner.info()


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

    def info(self) -> dict[str, Any]:
        """The gamma of each net and the training loss it was recomputed from."""
        return {"gammas": list(self.scheduler.gammas), "swap_losses": list(self.scheduler.swap_losses)}

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
        return self.task.meta_loss(self.model, self.task.meta_batch())

    def step_optimizer(self, optimizer: Optimizer, closure: Callable[[], torch.Tensor]) -> None:
        self.tuner.step(closure, self._val_loss)

    def state_dict(self) -> dict:
        return {"tuner": self.tuner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.tuner.load_state_dict(state["tuner"])

    def scale_lr(self, optimizer: Optimizer, factor: float) -> None:
        super().scale_lr(optimizer, factor)
        self.tuner.eta *= factor


def _replacement(schedule: Schedule, ctx: BuildContext, kw: dict[str, Any]) -> Optimizer:
    return replacement_optimizer(schedule, ctx.optimizer.param_groups[0], ctx.model.parameters(),
                                 ctx.lr_multiplier, kw)


def replacement_optimizer(schedule: Schedule, group: dict[str, Any], params: Any, lr_multiplier: float,
                          kw: dict[str, Any]) -> Optimizer:
    """The optimiser that replaces the base one (kinds of :data:`REPLACING`) over ``params``: its LR from ``kw``,
    else by the declaration's ``default_lr`` from the base optimiser's ``group``, times ``lr_multiplier``; the
    keys the declaration ``inherits`` taken from ``group``. A rejected parameter is a one-line ConfigError."""
    kw = dict(kw)
    if "lr" in kw:
        lr = float(kw.pop("lr"))
    elif schedule.default_lr == "base":
        lr = float(group["lr"])
    elif schedule.default_lr == "adam":
        lr = float(group["lr"]) if "betas" in group else 1e-3
    else:
        lr = float(schedule.default_lr)
    inherited = {k: group[k] for k in schedule.inherits if k in group and k not in kw}
    assert schedule.make is not None
    try:
        return schedule.make(params, lr * lr_multiplier, **inherited, **kw)
    except TypeError as err:
        raise ConfigError(f"schedule {schedule.name}: bad parameters ({err}); fix them") from err


def build_kind(schedule: Schedule, ctx: BuildContext, kw: dict[str, Any]) -> tuple[Optimizer, LRDriver]:
    """The optimiser and LR driver of ``schedule`` (one with a ``make`` and a kind of :data:`KINDS`) for the
    run of ``ctx``; ``kw`` are its parameters, run-relative defaults filled in. Schedules that wrap the base
    optimiser change its LR in place (times ``ctx.lr_multiplier``); the others replace it."""
    name, kind = schedule.name, schedule.kind
    kw = dict(kw)
    if kind in REPLACING:
        optimizer = _replacement(schedule, ctx, kw)
        if kind == "train_eval_optimizer":
            return optimizer, TrainEvalDriver(optimizer, name)
        if kind == "closure_optimizer":
            return optimizer, ClosureDriver(name)
        if kind == "loss_optimizer":
            return optimizer, LossDriver(optimizer, name)
        driver = LRDriver()
        driver.name = name
        return optimizer, driver
    optimizer = ctx.optimizer
    for group in optimizer.param_groups:
        if name == "lrbench":
            group["lr_scale"] = group.get("lr_scale", 1.0) * ctx.lr_multiplier
        else:
            group["lr"] = float(group["lr"]) * ctx.lr_multiplier
    assert schedule.make is not None

    def make(**extra: Any) -> Any:
        try:
            return schedule.make(optimizer, total_steps=ctx.total_steps, steps_per_epoch=ctx.steps_per_epoch,
                                 **extra, **kw)
        except TypeError as err:
            raise ConfigError(f"schedule {name}: bad parameters ({err}); fix them") from err

    if kind == "eval_metric_scheduler":
        metric_key = str(kw.pop("metric_key", "meta_loss"))
        if metric_key.startswith("test_"):
            raise ConfigError(f"schedule {name}: metric_key={metric_key} would tune on the test split; use a "
                              "meta_* (meta-validation) or train_loss key")
        return optimizer, TorchSchedulerDriver(make(), name, metric_key)
    if kind == "eval_loss_scheduler":
        interval = int(kw.pop("eval_interval"))
        return optimizer, EvalLossDriver(make(), ctx.task, ctx.model, interval, name)
    if kind == "metric_scheduler":
        return optimizer, MetricDriver(make(), name)
    if kind == "hypergradient":
        return optimizer, HypergradientDriver(make(), ctx.task, ctx.model, name)
    if kind == "tuner":
        return optimizer, TunerDriver(make(model=ctx.model, loss_fn=ctx.task.loss), ctx.task)
    return optimizer, TorchSchedulerDriver(make(), name)
