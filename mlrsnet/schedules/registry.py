"""Every baseline schedule by the name a config uses (``schedule=<name>``), and how to drive it.

:data:`SCHEDULES` is data only: for each name its :data:`KINDS` entry (how a training loop must
call it), a one-line summary and the paper. Two small builders construct any of them:
:func:`build_scheduler` for the names that wrap an existing optimizer (kinds ``scheduler``,
``metric_scheduler``, ``eval_metric_scheduler``, ``eval_loss_scheduler``, ``tuner``) and :func:`build_optimizer` for the
names that replace the optimizer (kinds ``optimizer``, ``train_eval_optimizer``,
``closure_optimizer``). ``mlrsnet`` and ``fixed`` are driven by the training loop itself and are
not listed here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.autolr import AutoLRTuner
from mlrsnet.schedules.builtin import TORCH_SCHEDULES, WARMUP_POLICIES, build_torch_scheduler, build_warmup_policy
from mlrsnet.schedules.greedy import GreedyLR
from mlrsnet.schedules.hd import SGDHD, AdamHD
from mlrsnet.schedules.l4 import L4
from mlrsnet.schedules.line_search import SGDArmijo
from mlrsnet.schedules.lrbench import LRBenchScheduler
from mlrsnet.schedules.marthe import MartheTuner
from mlrsnet.schedules.peers import PEER_OPTIMIZERS, build_peer_optimizer

__all__ = ["KINDS", "SCHEDULES", "ScheduleInfo", "available_schedules", "build_optimizer", "build_scheduler",
           "describe_schedule"]

KINDS: dict[str, str] = {
    "scheduler": "wraps the optimizer; call scheduler.step() after every optimizer.step()",
    "metric_scheduler": "wraps the optimizer; call scheduler.step(train_loss) after every optimizer.step()",
    "eval_metric_scheduler": "wraps the optimizer; call scheduler.step(val_metric) after every evaluation",
    "eval_loss_scheduler": (
        "wraps the optimizer; call scheduler.step(eval_loss) after every evaluation on held-out data, every "
        "eval_interval iterations"
    ),
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
_WRAPPING = frozenset({"scheduler", "metric_scheduler", "eval_metric_scheduler", "eval_loss_scheduler", "tuner",
                       "hypergradient"})


@dataclass(frozen=True)
class ScheduleInfo:
    """What a config name means: its kind (see :data:`KINDS`), a summary and the paper."""

    kind: str
    summary: str
    reference: str


_TORCH = "PyTorch torch.optim.lr_scheduler"
_SGDR = "Loshchilov & Hutter, SGDR, ICLR 2017"
_HD = "Baydin et al., Hypergradient Descent, ICLR 2018"
_SF = "Defazio et al., The Road Less Scheduled, NeurIPS 2024"
_DA = "Defazio & Mishchenko, D-Adaptation, ICML 2023"
_MARTHE = "Donini et al., MARTHE: Scheduling the Learning Rate via Online Hypergradients, IJCAI 2020"
_LLM = "Jin et al., Rethinking Learning Rate Tuning in the Era of Large Language Models (LRBench++), 2023"
SCHEDULES: dict[str, ScheduleInfo] = {
    "lrbench": ScheduleInfo(
        "scheduler",
        "LRBench policy t -> lr (policy=FIX|STEP|NSTEP|EXP|INV|POLY|SIG|TRI|SIN|COS|...|COMPOSITE "
        "with k0, k1, gamma, p, l)",
        "Wu, Liu et al., Demystifying Learning Rate Policies, IEEE BigData 2019"),
    "constant": ScheduleInfo("scheduler", "constant LR (optionally after a linear warmup)", _TORCH),
    "step": ScheduleInfo("scheduler", "StepLR: lr0 * gamma^floor(t / step_size)", _TORCH),
    "multistep": ScheduleInfo("scheduler", "MultiStepLR: multiply by gamma at each milestone", _TORCH),
    "exponential": ScheduleInfo("scheduler", "ExponentialLR: lr0 * gamma^t", _TORCH),
    "linear": ScheduleInfo("scheduler", "LinearLR: linear decay to end_factor * lr0 over the run", _TORCH),
    "cosine": ScheduleInfo("scheduler", "CosineAnnealingLR over the run (after warmup)", _SGDR),
    "sgdr": ScheduleInfo("scheduler", "CosineAnnealingWarmRestarts: cosine restarted every T_0 * T_mult^i",
                         _SGDR),
    "onecycle": ScheduleInfo("scheduler", "OneCycleLR: warm up to max_lr, then anneal",
                             "Smith & Topin, Super-Convergence, 2019"),
    "plateau": ScheduleInfo("eval_metric_scheduler",
                            "ReduceLROnPlateau: lr *= factor after patience bad evaluations", _TORCH),
    "greedy": ScheduleInfo(
        "metric_scheduler",
        "GreedyLR: lr / factor after patience improvements, lr * factor after patience non-improvements",
        "Subramanian et al., Zeroth-Order Adaptive Learning Rate Scheduler (GreedyLR)"),
    "greedy_eval": ScheduleInfo(
        "eval_loss_scheduler",
        "GreedyLR stepped on the meta-validation loss every eval_interval iterations (as transformers' Trainer "
        "steps it on the eval loss)",
        "Subramanian et al., Zeroth-Order Adaptive Learning Rate Scheduler (GreedyLR)"),
    "warmup_constant": ScheduleInfo("scheduler", "linear warmup over warmup_ratio of the run, then constant "
                                    "(DeepSpeed WarmupLR)", _LLM),
    "warmup_linear": ScheduleInfo("scheduler", "linear warmup over warmup_ratio of the run, then linear decay "
                                  "to 0 (DeepSpeed WarmupDecayLR, the HuggingFace default)", _LLM),
    "warmup_cosine": ScheduleInfo("scheduler", "linear warmup over warmup_ratio of the run, then cosine decay "
                                  "to 0", _LLM),
    "autolr": ScheduleInfo(
        "tuner",
        "probe lr * {1/4..4} for a few steps every interval, fit loss vs ln lr (interpretation of AutoLR)",
        "Kwatra et al., AutoLR / LRTuner, 2021"),
    "sgd_hd": ScheduleInfo("optimizer",
                           "SGD-HD: alpha_t = alpha_{t-1} + beta * grad f(theta_{t-1}) . u_{t-2}", _HD),
    "adam_hd": ScheduleInfo("optimizer", "Adam-HD: hypergradient descent on Adam's LR", _HD),
    "sls": ScheduleInfo("closure_optimizer", "SGD with stochastic Armijo line search and step-size reset",
                        "Vaswani et al., Painless Stochastic Gradient, NeurIPS 2019"),
    "sgd_schedulefree": ScheduleInfo("train_eval_optimizer", "schedule-free SGD (no decay schedule)", _SF),
    "adamw_schedulefree": ScheduleInfo("train_eval_optimizer", "schedule-free AdamW", _SF),
    "prodigy": ScheduleInfo("optimizer", "Prodigy: Adam with an online estimate of the distance to optimum",
                            "Mishchenko & Defazio, Prodigy, ICML 2024"),
    "dadapt_sgd": ScheduleInfo("optimizer", "D-Adaptation SGD: learning-rate-free SGD", _DA),
    "dadapt_adam": ScheduleInfo("optimizer", "D-Adaptation Adam: learning-rate-free Adam", _DA),
    "marthe": ScheduleInfo(
        "hypergradient",
        "MARTHE: eta -= beta * grad E . Z, tangent Z = d theta / d eta discounted by mu (fixed or adapted), "
        "E on a meta-validation batch", _MARTHE),
    "rtho": ScheduleInfo(
        "hypergradient", "RTHO: MARTHE with mu = 1 (the exact online hypergradient of the whole run)",
        "Franceschi et al., Forward and Reverse Gradient-Based Hyperparameter Optimization, ICML 2017"),
    "l4": ScheduleInfo(
        "loss_optimizer",
        "L4: step alpha * (L - gamma * Lmin) / (g . v) along an Adam (or momentum) direction v",
        "Rolinek & Martius, L4: Practical loss-based stepsize adaptation for deep learning, NeurIPS 2018"),
}


def available_schedules() -> list[str]:
    """Every name in :data:`SCHEDULES`."""
    return sorted(SCHEDULES)


def _info(name: str) -> ScheduleInfo:
    if name not in SCHEDULES:
        raise ConfigError(f"unknown schedule {name!r}; use one of: {', '.join(available_schedules())}")
    return SCHEDULES[name]


def describe_schedule(name: str) -> str:
    """One line: the summary, how to drive it, and the reference."""
    info = _info(name)
    return f"{name}: {info.summary}. Protocol: {KINDS[info.kind]}. Reference: {info.reference}."


def build_scheduler(name: str, optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int,
                    model: nn.Module | None = None,
                    loss_fn: Callable[[nn.Module, Any], torch.Tensor] | None = None, **params: Any) -> Any:
    """Build a schedule that wraps ``optimizer`` (kinds scheduler, metric_scheduler,
    eval_metric_scheduler, eval_loss_scheduler, tuner, hypergradient); ``params`` are the schedule's own
    keyword arguments. ``autolr`` also needs ``model`` and ``loss_fn(model, batch)``."""
    info = _info(name)
    if info.kind not in _WRAPPING:
        raise ConfigError(f"schedule {name} replaces the optimizer (kind {info.kind}); build it with "
                          "build_optimizer instead of build_scheduler")
    if name == "lrbench":
        if "policy" not in params:
            raise ConfigError("schedule lrbench needs policy=<LRBench policy name>, e.g. policy=TRI")
        return LRBenchScheduler(optimizer, **params)
    if name in TORCH_SCHEDULES:
        return build_torch_scheduler(name, optimizer, total_steps, steps_per_epoch, **params)
    if name in WARMUP_POLICIES:
        return build_warmup_policy(name, optimizer, total_steps, steps_per_epoch, **params)
    try:
        if name in ("greedy", "greedy_eval"):
            return GreedyLR(optimizer, **params)
        if name in ("marthe", "rtho"):
            if name == "rtho":
                if "mu" in params:
                    raise ConfigError("schedule rtho is MARTHE with mu=1; use schedule=marthe to set mu")
                params = {**params, "mu": 1.0}
            return MartheTuner(optimizer, **params)
        if model is None or loss_fn is None:
            raise ConfigError("schedule autolr needs the model and loss_fn(model, batch); pass both")
        return AutoLRTuner(optimizer, model, loss_fn, **params)
    except TypeError as err:
        raise ConfigError(f"schedule {name}: bad parameters ({err}); fix them") from err


def build_optimizer(name: str, params: Iterable[Any], lr: float, **kw: Any) -> Optimizer:
    """Build a schedule that replaces the optimizer (kinds optimizer, train_eval_optimizer,
    closure_optimizer, loss_optimizer) over ``params`` with initial LR (or step size, or LR multiplier) ``lr``."""
    info = _info(name)
    if info.kind in _WRAPPING:
        raise ConfigError(f"schedule {name} wraps an optimizer (kind {info.kind}); build it with "
                          "build_scheduler instead of build_optimizer")
    if name in PEER_OPTIMIZERS:
        return build_peer_optimizer(name, params, lr, **kw)
    cls = {"sgd_hd": SGDHD, "adam_hd": AdamHD, "l4": L4}.get(name)
    try:
        if cls is not None:
            return cls(params, lr=lr, **kw)
        return SGDArmijo(params, init_step_size=lr, **kw)
    except TypeError as err:
        raise ConfigError(f"schedule {name}: bad parameters ({err}); fix them") from err
