r"""L4: a step size from the loss itself, on top of momentum SGD or Adam.

Rolinek & Martius, "L4: Practical loss-based stepsize adaptation for deep learning", NeurIPS 2018
(reference code: martius-lab/l4-optimizer, ``L4General``/``L4Mom``/``L4Adam``, TensorFlow). At step
``k`` (from 0) with mini-batch loss ``L_k`` and gradient ``grad_k`` (plus L2 weight decay, if any)::

    m_k  = beta1 * m_{k-1} + (1 - beta1) * grad_k,        g_k = m_k / (1 - beta1^(k+1))     (gradient estimate)
    s_k  = beta2 * s_{k-1} + (1 - beta2) * grad_k^2,      v_k = g_k / (sqrt(s_k / (1 - beta2^(k+1))) + adam_eps)
                                                          (direction="adam"; direction="momentum": v_k = g_k)
    Lmin_k = gamma0 * L_0  at k = 0,   min(Lmin_{k-1}, L_k)  after
    eta_k  = alpha * (L_k - gamma * Lmin_k) / (g_k . v_k + eps)
    theta_{k+1} = theta_k - lr * eta_k * v_k
    Lmin_k <- (1 + 1/tau) * Lmin_k                         (the minimum is slowly forgotten)

``gamma * Lmin`` is the tracked estimate ``L*`` of the attainable loss, ``eta_k`` the step that would
reach a fraction ``alpha`` of the way to it on the linearisation. The defaults are the paper's and the
authors' code's: ``alpha = 0.15`` (their "fraction"), ``gamma = 0.9``, ``gamma0 = 0.75``,
``tau = 1000`` ("minloss_forget_time"), ``eps = 1e-12``, ``beta1 = 0.9`` (time scale 10),
``beta2 = 0.999`` (time scale 1000), ``adam_eps = 1e-4``. ``lr`` (default 1, not in the paper)
multiplies the step, so that a benchmark can scale it like any other LR.

The loss must be non-negative (it is a distance to an attainable minimum), and the step needs it:
``step(loss=...)``, ``step(closure)`` with a torch-style closure (it computes the loss and its
gradients), or ``prepare(loss)`` then ``step()``. ``prepare`` puts the step size ``lr * eta_k`` in
every param group's ``"lr"`` before the step is taken, so a training loop logs it like an LR.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from mlrsnet.errors import ConfigError

__all__ = ["L4"]


class L4(Optimizer):
    """L4 step-size adaptation with an Adam (``direction="adam"``, L4Adam) or momentum (L4Mom) direction
    (see the module docstring for the rule and the defaults)."""

    def __init__(self, params: Iterable[Any], lr: float = 1.0, direction: str = "adam", alpha: float = 0.15,
                 gamma: float = 0.9, gamma0: float = 0.75, tau: float = 1000.0, eps: float = 1e-12,
                 betas: tuple[float, float] = (0.9, 0.999), adam_eps: float = 1e-4,
                 weight_decay: float = 0.0) -> None:
        if direction not in ("adam", "momentum"):
            raise ConfigError(f"L4: direction={direction!r} is unknown; use 'adam' or 'momentum'")
        if not (lr > 0 and alpha > 0 and 0 < gamma <= 1 and 0 < gamma0 <= 1 and tau > 0 and eps >= 0
                and adam_eps > 0 and weight_decay >= 0):
            raise ConfigError(f"L4: need lr > 0, alpha > 0, 0 < gamma, gamma0 <= 1, tau > 0, eps >= 0, "
                              f"adam_eps > 0, weight_decay >= 0 (got lr={lr}, alpha={alpha}, gamma={gamma}, "
                              f"gamma0={gamma0}, tau={tau}, eps={eps}, adam_eps={adam_eps}, "
                              f"weight_decay={weight_decay})")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ConfigError(f"L4: betas={betas} must lie in [0, 1)")
        super().__init__(params, {"lr": 0.0, "weight_decay": weight_decay})
        self.scale = float(lr)
        self.direction = direction
        self.alpha, self.gamma, self.gamma0, self.tau, self.eps = alpha, gamma, gamma0, tau, eps
        self.betas = (float(betas[0]), float(betas[1]))
        self.adam_eps = adam_eps
        self.k = 0
        self.min_loss = math.nan
        self.last_step_size = 0.0
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    @torch.no_grad()
    def prepare(self, loss: torch.Tensor | float) -> float:
        """Compute this step's ``lr * eta_k`` from the mini-batch ``loss`` and the gradients in ``.grad``
        (updating the moving averages and ``Lmin``) and put it in every group's ``"lr"``, so that a
        training loop logs the step size of the step it is about to take; :meth:`step` applies it."""
        value = float(loss)
        if value < 0:
            raise ConfigError(f"L4 needs a non-negative loss, got {value:.4g}; use a loss bounded below by 0")
        self._pending = []
        if not math.isfinite(value):
            return math.nan  # the loop's divergence guard reports it; no step on a non-finite loss
        beta1, beta2 = self.betas
        self.min_loss = self.gamma0 * value if self.k == 0 else min(self.min_loss, value)
        corr1, corr2 = 1 - beta1 ** (self.k + 1), 1 - beta2 ** (self.k + 1)
        dot = torch.zeros((), dtype=torch.float64)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad + group["weight_decay"] * p if group["weight_decay"] else p.grad
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                    if self.direction == "adam":
                        state["exp_avg_sq"] = torch.zeros_like(p)
                state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
                g = state["exp_avg"] / corr1
                if self.direction == "adam":
                    state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    v = g / ((state["exp_avg_sq"] / corr2).sqrt() + self.adam_eps)
                else:
                    v = g
                dot = dot + (g * v).sum().double().cpu()
                self._pending.append((p, v))
        eta = self.alpha * (value - self.gamma * self.min_loss) / (float(dot) + self.eps)
        self.min_loss *= 1 + 1 / self.tau
        self.k += 1
        self.last_step_size = self.scale * eta
        for group in self.param_groups:
            group["lr"] = self.last_step_size
        return self.last_step_size

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None, *,  # type: ignore[override]
             loss: torch.Tensor | float | None = None) -> torch.Tensor | float | None:
        """One L4 step; the mini-batch loss comes from ``loss``, from ``closure()``, or from an earlier
        :meth:`prepare` of this step."""
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if loss is not None:
            self.prepare(loss)
        if self._pending is None:
            raise ConfigError("L4.step needs the mini-batch loss: step(loss=loss), step(closure) or prepare(loss)")
        for p, v in self._pending:
            p.add_(v, alpha=-self.last_step_size)
        self._pending = None
        return loss

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["l4"] = {"k": self.k, "min_loss": self.min_loss, "scale": self.scale,
                       "last_step_size": self.last_step_size}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("l4")
        super().load_state_dict(state_dict)
        self.k, self.min_loss = int(extra["k"]), float(extra["min_loss"])
        self.scale, self.last_step_size = float(extra["scale"]), float(extra["last_step_size"])
