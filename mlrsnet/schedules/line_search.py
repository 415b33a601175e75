r"""Stochastic Armijo line search (SLS): SGD whose step size is searched on every mini-batch.

Vaswani, Mishkin, Laradji, Schmidt, Gidel, Lacoste-Julien, "Painless Stochastic Gradient:
Interpolation, Line-Search, and Convergence Rates", NeurIPS 2019 (reference code:
IssamLaradji/sls). On mini-batch loss ``f`` with gradient ``g`` at ``theta``, each step:

1. starts from the previous accepted step size ``eta`` reset by ``reset_option``:
   ``0``: ``eta`` unchanged; ``1`` (default): ``eta <- min(eta * gamma^(1/n), eta_max)`` with
   ``n = n_batches_per_epoch`` (grows by ``gamma`` per epoch; the ``eta_max`` cap is a safeguard
   added here); ``2``: ``eta <- init_step_size``;
2. backtracks ``eta <- beta_b * eta`` (at most ``max_backtracks`` times) until the Armijo condition
   ``f(theta - eta * g) <= f(theta) - c * eta * ||g||^2`` holds on the same mini-batch;
3. takes the step ``theta <- theta - eta * g``. If no trial satisfies the condition the parameters
   are left unchanged (the reference code takes a 1e-6 step instead).

The accepted ``eta`` is every param group's ``"lr"`` (so it is logged and checkpointed like any LR);
``last_armijo_held``, ``last_backtracks``, ``last_loss``, ``last_loss_next`` and
``last_grad_norm_sq`` describe the latest step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from mlrsnet.errors import ConfigError
from mlrsnet.schedules._rng import rng_replayer

__all__ = ["SGDArmijo"]


class SGDArmijo(Optimizer):
    """SGD with a stochastic Armijo line search and step-size reset (see the module docstring).

    ``step(closure)``: the closure computes and returns the loss on the *current* mini-batch
    without calling ``backward`` or ``zero_grad``; it is called once with gradients and again for
    every trial step size. Every call within a step sees the same random-number state (so dropout
    masks match), and the global generator advances as if the closure had been called once.
    """

    def __init__(self, params: Iterable[Any], init_step_size: float = 1.0, c: float = 0.1,
                 beta_b: float = 0.9, gamma: float = 2.0, reset_option: int = 1,
                 n_batches_per_epoch: int = 500, max_backtracks: int = 100, eta_max: float = 10.0) -> None:
        if init_step_size <= 0 or eta_max <= 0 or not 0 < c < 1 or not 0 < beta_b < 1 or gamma < 1:
            raise ConfigError(f"SGDArmijo: need init_step_size > 0, eta_max > 0, 0 < c < 1, 0 < beta_b < 1 "
                              f"and gamma >= 1 (got {init_step_size}, {eta_max}, {c}, {beta_b}, {gamma})")
        if reset_option not in (0, 1, 2):
            raise ConfigError(f"SGDArmijo: reset_option={reset_option} is unknown; use 0, 1 or 2")
        if n_batches_per_epoch < 1 or max_backtracks < 0:
            raise ConfigError("SGDArmijo: n_batches_per_epoch must be >= 1 and max_backtracks >= 0")
        super().__init__(params, {"lr": init_step_size})
        self.init_step_size = init_step_size
        self.c = c
        self.beta_b = beta_b
        self.gamma = gamma
        self.reset_option = reset_option
        self.n_batches_per_epoch = n_batches_per_epoch
        self.max_backtracks = max_backtracks
        self.eta_max = eta_max
        self.last_armijo_held = False
        self.last_backtracks = 0
        self.last_loss = float("nan")
        self.last_loss_next = float("nan")
        self.last_grad_norm_sq = float("nan")

    @property
    def step_size(self) -> float:
        """The step size accepted by the latest step (the initial one before any step)."""
        return float(self.param_groups[0]["lr"])

    def _reset(self, eta: float) -> float:
        if self.reset_option == 0:
            return eta
        if self.reset_option == 1:
            return min(eta * self.gamma ** (1.0 / self.n_batches_per_epoch), self.eta_max)
        return self.init_step_size

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        if closure is None:
            raise ConfigError("SGDArmijo.step needs a closure that returns the loss on the current "
                              "mini-batch; call step(closure)")
        params = [p for group in self.param_groups for p in group["params"]]
        replay = rng_replayer(params)
        self.zero_grad()
        with torch.enable_grad():
            loss = closure()
        loss.backward()

        with torch.no_grad():
            start = [p.detach().clone() for p in params]
            grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
            f0 = float(loss.detach())
            grad_norm_sq = float(sum((g * g).sum() for g in grads))
            eta = self._reset(self.step_size)
            held, backtracks, f_next = grad_norm_sq == 0.0, 0, f0
            while not held:
                for p, p0, g in zip(params, start, grads, strict=True):
                    torch.add(p0, g, alpha=-eta, out=p)
                with replay():
                    f_next = float(closure())
                held = f_next <= f0 - self.c * eta * grad_norm_sq
                if held or backtracks == self.max_backtracks:
                    break
                eta *= self.beta_b
                backtracks += 1
            if not held:
                for p, p0 in zip(params, start, strict=True):
                    p.copy_(p0)

        for group in self.param_groups:
            group["lr"] = eta
        self.last_armijo_held = held
        self.last_backtracks = backtracks
        self.last_loss = f0
        self.last_loss_next = f_next
        self.last_grad_norm_sq = grad_norm_sq
        return loss

