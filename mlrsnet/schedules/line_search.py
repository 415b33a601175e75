r"""Stochastic Armijo line search (SLS): SGD whose step size is searched on every mini-batch.

Vaswani, Mishkin, Laradji, Schmidt, Gidel, Lacoste-Julien, "Painless Stochastic Gradient:
Interpolation, Line-Search, and Convergence Rates", NeurIPS 2019 (reference code: IssamLaradji/sls,
``Sls``, whose behaviour this class reproduces). On mini-batch loss ``f`` at ``theta``, each step
computes ``f0 = f(theta)`` and the gradient ``g`` once, then for each param group in turn
(``search="group"``, the reference's; ``search="joint"`` treats all groups as one):

1. starts from the step size carried from the previous step (the last searched group's, for every
   group) reset by
   ``reset_option``: ``0``: unchanged; ``1`` (default): ``eta <- eta * gamma^(1/n)`` with
   ``n = n_batches_per_epoch`` (grows by ``gamma`` per epoch; no upper bound unless ``eta_max`` is
   given, an option that is not in the reference); ``2``: ``eta <- init_step_size``;
2. if the group's gradient norm ``|g|`` is below ``1e-8``, leaves the group where it is;
3. otherwise tries ``theta <- theta0 - eta * g`` at most ``max_backtracks`` times, multiplying
   ``eta`` by ``beta_b`` after each trial that fails the Armijo condition
   ``f(theta0 - eta * g) <= f0 - c * eta * |g|^2`` (``f`` the loss of the same mini-batch at the
   current point of every group: groups searched earlier have already moved);
4. if no trial satisfied it, takes the tiny step ``theta0 - fallback_step * g`` (1e-6, as the
   reference) and keeps the reduced ``eta = eta * beta_b^max_backtracks``.

The accepted ``eta`` is the group's ``"lr"`` (so it is logged and checkpointed like any LR);
``last_armijo_held`` (every group), ``last_backtracks`` (the most of any group), ``last_loss``,
``last_loss_next`` and ``last_grad_norm_sq`` (the last group's) describe the latest step.
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
                 n_batches_per_epoch: int = 500, max_backtracks: int = 100, eta_max: float | None = None,
                 search: str = "group", fallback_step: float = 1e-6) -> None:
        if eta_max is not None and eta_max <= 0:
            raise ConfigError(f"SGDArmijo: eta_max={eta_max} must be > 0, or None for no cap")
        if search not in ("group", "joint"):
            raise ConfigError(f"SGDArmijo: search={search!r} is unknown; use 'group' (the reference's) or 'joint'")
        if fallback_step < 0:
            raise ConfigError(f"SGDArmijo: fallback_step={fallback_step} must be >= 0")
        if init_step_size <= 0 or not 0 < c < 1 or not 0 < beta_b < 1 or gamma < 1:
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
        self.search = search
        self.fallback_step = fallback_step
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
            eta = eta * self.gamma ** (1.0 / self.n_batches_per_epoch)
            return eta if self.eta_max is None else min(eta, self.eta_max)
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
        f0 = float(loss.detach())
        blocks = [self.param_groups] if self.search == "joint" else [[g] for g in self.param_groups]
        # The reference carries one step size from step to step, the last searched group's, and every
        # group's search starts from it.
        carried = float(self.param_groups[-1]["lr"])
        all_held, most_backtracks = True, 0
        with torch.no_grad():
            for groups in blocks:
                eta, held, backtracks, f_next, grad_norm_sq = self._search(groups, f0, self._reset(carried),
                                                                           closure, replay)
                for group in groups:
                    group["lr"] = eta
                all_held, most_backtracks = all_held and held, max(most_backtracks, backtracks)
        self.last_armijo_held = all_held
        self.last_backtracks = most_backtracks
        self.last_loss = f0
        self.last_loss_next = f_next
        self.last_grad_norm_sq = grad_norm_sq
        return loss

    def _search(self, groups: list[dict], f0: float, eta: float, closure: Callable[[], torch.Tensor],
                replay: Callable) -> tuple[float, bool, int, float, float]:
        params = [p for group in groups for p in group["params"]]
        start = [p.detach().clone() for p in params]
        grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
        grad_norm_sq = float(sum((g * g).sum() for g in grads))
        if grad_norm_sq ** 0.5 < 1e-8:
            return eta, True, 0, f0, grad_norm_sq
        held, backtracks, f_next = False, 0, f0
        for _ in range(self.max_backtracks):
            for p, p0, g in zip(params, start, grads, strict=True):
                torch.add(p0, g, alpha=-eta, out=p)
            with replay():
                f_next = float(closure())
            held = f_next <= f0 - self.c * eta * grad_norm_sq
            if held:
                break
            eta *= self.beta_b
            backtracks += 1
        if not held:
            for p, p0, g in zip(params, start, grads, strict=True):
                torch.add(p0, g, alpha=-self.fallback_step, out=p)
        return eta, held, backtracks, f_next, grad_norm_sq
