r"""PyTorch's built-in schedulers behind one factory, stepped once per iteration.

:func:`build_torch_scheduler` returns a ``torch.optim.lr_scheduler`` object to be stepped **once per
training iteration**, after ``optimizer.step()``; the one exception is ``plateau``
(``ReduceLROnPlateau``), which is stepped with a metric as often as the caller measures one (its
``patience`` and ``cooldown`` count those calls). Parameters are in iterations; each one that is
naturally given in epochs also has an ``*_epochs`` form, converted with ``steps_per_epoch``
(``step_size_epochs``, ``milestones_epochs``, ``T_0_epochs``, ``warmup_epochs``;
``gamma_per_epoch = g`` becomes the per-iteration ``gamma = g ** (1 / steps_per_epoch)``).

Names and schedules (``lr0`` is the optimizer's lr, ``t`` the iteration after warmup)::

    constant      lr0
    step          lr0 * gamma^floor(t / step_size)                              StepLR
    multistep     lr0 * gamma^#{m in milestones: m <= t}                       MultiStepLR
    exponential   lr0 * gamma^t                                                 ExponentialLR
    linear        lr0 * (1 + (end_factor - 1) * min(t, T) / T),  T = total - warmup   LinearLR
    cosine        eta_min + (lr0 - eta_min) * (1 + cos(pi * t / T_max)) / 2,   T_max = total - warmup
                                                                                CosineAnnealingLR
    sgdr          cosine restarted after T_0, T_0*T_mult, ... iterations (Loshchilov & Hutter 2017)
                                                                                CosineAnnealingWarmRestarts
    onecycle      warm up to max_lr then anneal over total_steps (Smith & Topin 2019)   OneCycleLR
    plateau       lr *= factor after patience non-improving metric calls             ReduceLROnPlateau

LLM fine-tuning policies (LRBench++, Jin et al. 2023), each a linear warmup over a fraction
``warmup_ratio`` of the run (default 0.03, ``W = max(1, ceil(warmup_ratio * total))``) in front of::

    warmup_constant   lr0 after warmup                          DeepSpeed WarmupLR (linear warmup_type)
    warmup_linear     linear decay to 0 over the rest           DeepSpeed WarmupDecayLR, HF "linear"
    warmup_cosine     cosine decay to 0 over the rest           HF "cosine"

Linear warmup (``warmup_steps`` or ``warmup_epochs``, ``warmup_start_factor``, default 1e-3) goes
in front of any of them except ``onecycle`` (which has its own) and ``plateau``:
``lr = lr0 * (s + (1 - s) * t / W)`` for ``t < W``, then the main schedule starting from its own
``t = 0`` (``SequentialLR`` of ``LinearLR`` and the main one). ``milestones`` are absolute
training iterations (shifted internally by the warmup); the other parameters count from the end of
warmup.
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim import lr_scheduler as sched

from mlrsnet.errors import ConfigError

__all__ = ["TORCH_SCHEDULES", "WARMUP_POLICIES", "build_torch_scheduler", "build_warmup_policy"]

# name -> keyword arguments it accepts (besides warmup_*), the *_epochs forms included.
TORCH_SCHEDULES: dict[str, frozenset[str]] = {
    "constant": frozenset(),
    "step": frozenset({"step_size", "step_size_epochs", "gamma"}),
    "multistep": frozenset({"milestones", "milestones_epochs", "gamma"}),
    "exponential": frozenset({"gamma", "gamma_per_epoch"}),
    "linear": frozenset({"end_factor"}),
    "cosine": frozenset({"eta_min", "T_max"}),
    "sgdr": frozenset({"T_0", "T_0_epochs", "T_mult", "eta_min"}),
    "onecycle": frozenset({"max_lr", "pct_start", "anneal_strategy", "cycle_momentum", "base_momentum",
                           "max_momentum", "div_factor", "final_div_factor", "three_phase"}),
    "plateau": frozenset({"mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr",
                          "eps"}),
}
_WARMUP_KEYS = frozenset({"warmup_steps", "warmup_epochs", "warmup_start_factor"})
_NO_WARMUP = frozenset({"onecycle", "plateau"})


def _pop_iterations(name: str, kw: dict[str, Any], key: str, epochs_key: str, steps_per_epoch: int,
                    required: bool) -> Any:
    """Return ``kw[key]`` (iterations), or ``kw[epochs_key]`` converted to iterations; pops both."""
    in_iters, in_epochs = kw.pop(key, None), kw.pop(epochs_key, None)
    if in_iters is not None and in_epochs is not None:
        raise ConfigError(f"schedule {name}: give {key} or {epochs_key}, not both")
    if in_epochs is not None:
        if isinstance(in_epochs, int | float):
            return max(1, round(in_epochs * steps_per_epoch))
        return [round(e * steps_per_epoch) for e in in_epochs]
    if in_iters is None and required:
        raise ConfigError(f"schedule {name}: missing {key} (iterations) or {epochs_key}; set one of them")
    return in_iters


def _main_scheduler(name: str, optimizer: Optimizer, horizon: int, warmup: int, steps_per_epoch: int,
                    kw: dict[str, Any]) -> sched.LRScheduler | sched.ReduceLROnPlateau:
    if name == "constant":
        return sched.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if name == "step":
        step_size = _pop_iterations(name, kw, "step_size", "step_size_epochs", steps_per_epoch, True)
        return sched.StepLR(optimizer, step_size=step_size, **kw)
    if name == "multistep":
        milestones = _pop_iterations(name, kw, "milestones", "milestones_epochs", steps_per_epoch, True)
        if any(m <= warmup for m in milestones):
            raise ConfigError(f"schedule multistep: milestones {milestones} must all come after the warmup "
                              f"({warmup} iterations); move them or shorten the warmup")
        return sched.MultiStepLR(optimizer, milestones=[m - warmup for m in milestones], **kw)
    if name == "exponential":
        gamma, per_epoch = kw.pop("gamma", None), kw.pop("gamma_per_epoch", None)
        if (gamma is None) == (per_epoch is None):
            raise ConfigError("schedule exponential: give exactly one of gamma (per iteration) or "
                              "gamma_per_epoch")
        if gamma is None:
            gamma = per_epoch ** (1 / steps_per_epoch)
        return sched.ExponentialLR(optimizer, gamma=gamma)
    if name == "linear":
        end = kw.pop("end_factor", 0.0)
        return sched.LinearLR(optimizer, start_factor=1.0, end_factor=end, total_iters=horizon)
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=kw.pop("T_max", horizon), **kw)
    if name == "sgdr":
        t0 = _pop_iterations(name, kw, "T_0", "T_0_epochs", steps_per_epoch, True)
        return sched.CosineAnnealingWarmRestarts(optimizer, T_0=t0, **kw)
    if name == "onecycle":
        kw.setdefault("max_lr", [g["lr"] for g in optimizer.param_groups])
        return sched.OneCycleLR(optimizer, total_steps=horizon, **kw)
    return sched.ReduceLROnPlateau(optimizer, **kw)


def build_torch_scheduler(name: str, optimizer: Optimizer, total_steps: int, steps_per_epoch: int,
                          **kwargs: Any) -> sched.LRScheduler | sched.ReduceLROnPlateau:
    """Build PyTorch scheduler ``name`` (see the module table) for a run of ``total_steps`` iterations.

    Step the result once per iteration after ``optimizer.step()`` (``plateau``: ``step(metric)``).
    Raises :class:`~mlrsnet.errors.ConfigError` for an unknown name, an unexpected or missing
    parameter, or a value torch rejects.
    """
    if name not in TORCH_SCHEDULES:
        raise ConfigError(f"unknown torch schedule {name!r}; use one of: "
                          f"{', '.join(sorted(TORCH_SCHEDULES))}")
    if total_steps < 1 or steps_per_epoch < 1:
        raise ConfigError(f"schedule {name}: total_steps={total_steps} and steps_per_epoch={steps_per_epoch} "
                          "must both be >= 1")
    allowed = TORCH_SCHEDULES[name] | (frozenset() if name in _NO_WARMUP else _WARMUP_KEYS)
    unexpected = sorted(set(kwargs) - allowed)
    if unexpected:
        raise ConfigError(f"schedule {name}: unexpected parameter(s) {', '.join(unexpected)}; "
                          f"it takes {', '.join(sorted(allowed)) or 'none'}")
    kw = dict(kwargs)
    start_factor = kw.pop("warmup_start_factor", 1e-3)
    warmup = _pop_iterations(name, kw, "warmup_steps", "warmup_epochs", steps_per_epoch, False) or 0
    if warmup >= total_steps:
        raise ConfigError(f"schedule {name}: warmup ({warmup} iterations) must be shorter than total_steps "
                          f"({total_steps}); shorten the warmup")
    try:
        main = _main_scheduler(name, optimizer, total_steps - warmup, warmup, steps_per_epoch, kw)
        if warmup == 0:
            return main
        ramp = sched.LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup)
        return sched.SequentialLR(optimizer, schedulers=[ramp, main], milestones=[warmup])
    except (TypeError, ValueError) as err:
        raise ConfigError(f"schedule {name}: torch rejected the parameters ({err}); fix them") from err


# LLM fine-tuning policy -> the torch schedule that follows its warmup.
WARMUP_POLICIES: dict[str, str] = {"warmup_constant": "constant", "warmup_linear": "linear",
                                   "warmup_cosine": "cosine"}


def build_warmup_policy(name: str, optimizer: Optimizer, total_steps: int, steps_per_epoch: int,
                        warmup_ratio: float | None = 0.03, **kwargs: Any) -> sched.LRScheduler:
    """Build LLM fine-tuning policy ``name`` of :data:`WARMUP_POLICIES` (see the module docstring): a
    linear warmup over ``warmup_ratio`` of ``total_steps`` (or an explicit ``warmup_steps`` /
    ``warmup_epochs``), then the policy's decay. ``kwargs`` are those of the underlying torch schedule."""
    if name not in WARMUP_POLICIES:
        raise ConfigError(f"unknown warmup policy {name!r}; use one of: {', '.join(sorted(WARMUP_POLICIES))}")
    kw = {k: v for k, v in kwargs.items() if v is not None}
    ratio = 0.03 if warmup_ratio is None else float(warmup_ratio)
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"schedule {name}: warmup_ratio={ratio} must be in [0, 1)")
    if "warmup_steps" not in kw and "warmup_epochs" not in kw and ratio > 0:
        kw["warmup_steps"] = max(1, math.ceil(ratio * total_steps))
    return build_torch_scheduler(WARMUP_POLICIES[name], optimizer, total_steps, steps_per_epoch, **kw)
