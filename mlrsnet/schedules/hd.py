r"""Hypergradient descent: optimizers that learn their own LR online.

Baydin, Cornish, Martinez Rubio, Schmidt, Wood, "Online Learning Rate Adaptation with Hypergradient
Descent", ICLR 2018 (reference code: gpbaydin/hypergradient-descent). With the update
``theta_t = theta_{t-1} - alpha_t * u_{t-1}``, the derivative of the loss with respect to the LR
of the previous step is ``d f(theta_{t-1}) / d alpha_{t-1} = -grad f(theta_{t-1}) . u_{t-2}``, so a
gradient step on the LR with hypergradient LR ``beta`` is::

    alpha_t = alpha_{t-1} + beta * grad f(theta_{t-1}) . u_{t-2}          (u_{-1} = 0)

SGD-HD: ``u`` is the SGD direction (gradient plus L2 weight decay, through heavy-ball or Nesterov
momentum ``buf_t = mu * buf_{t-1} + g_t``; ``u = buf`` or ``g + mu * buf``). Adam-HD: ``u`` is the
bias-corrected Adam direction ``u_{t-1} = sqrt(1 - beta2^{t-1}) / (1 - beta1^{t-1}) * m_{t-1} /
(sqrt(v_{t-1}) + eps)``. Each param group has its own ``alpha`` (``group["lr"]``), updated from the
dot product over that group's parameters. SGD-HD matches the reference to float rounding.

Adam-HD deviates from the reference by default: the reference updates the LR once per parameter
*tensor*, inside its loop over the tensors, and each tensor's Adam step uses the LR as updated so far,
so its result depends on the order of the parameters (it is the paper's equation only for a model
with one parameter tensor). Here the dot product is summed over the group first and the LR updated
once per step, as in the paper's equation. ``AdamHD(..., per_tensor=True)`` reproduces the
reference's code instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from mlrsnet.errors import ConfigError

__all__ = ["AdamHD", "SGDHD"]


def _check(lr: float, hypergrad_lr: float, weight_decay: float) -> None:
    for name, value in (("lr", lr), ("hypergrad_lr", hypergrad_lr), ("weight_decay", weight_decay)):
        if value < 0:
            raise ConfigError(f"hypergradient optimizer: {name}={value} must be >= 0")


class SGDHD(Optimizer):
    """SGD whose LR follows hypergradient descent (see the module docstring for the equations)."""

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, hypergrad_lr: float = 1e-6) -> None:
        _check(lr, hypergrad_lr, weight_decay)
        if momentum < 0 or (nesterov and momentum == 0):
            raise ConfigError(f"SGDHD: momentum={momentum} must be >= 0, and > 0 when nesterov=True")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "nesterov": nesterov, "hypergrad_lr": hypergrad_lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = group["params"]
            grad = torch.cat([torch.zeros_like(p).reshape(-1) if p.grad is None else p.grad.reshape(-1)
                              for p in params])
            if group["weight_decay"]:
                grad = grad + group["weight_decay"] * torch.cat([p.reshape(-1) for p in params])
            # Group-wide state lives on the group's first parameter so that load_state_dict casts it.
            state = self.state[params[0]]
            if "prev_update" in state:
                group["lr"] += group["hypergrad_lr"] * torch.dot(grad, state["prev_update"]).item()
            update = grad
            if group["momentum"]:
                buf = state.get("momentum_buffer")
                buf = grad.clone() if buf is None else buf.mul_(group["momentum"]).add_(grad)
                state["momentum_buffer"] = buf
                update = grad + group["momentum"] * buf if group["nesterov"] else buf
            state["prev_update"] = update.clone()
            offset = 0
            for p in params:
                n = p.numel()
                p.add_(update[offset:offset + n].view_as(p), alpha=-group["lr"])
                offset += n
        return loss


class AdamHD(Optimizer):
    """Adam (L2 weight decay added to the gradient) whose LR follows hypergradient descent;
    ``per_tensor=True``: the LR is updated tensor by tensor, as the reference code does (see the module
    docstring)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, hypergrad_lr: float = 1e-8,
                 per_tensor: bool = False) -> None:
        _check(lr, hypergrad_lr, weight_decay)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps <= 0:
            raise ConfigError(f"AdamHD: betas={betas} must lie in [0, 1) and eps={eps} must be > 0")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "hypergrad_lr": hypergrad_lr, "per_tensor": bool(per_tensor)})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            live = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad + group["weight_decay"] * p if group["weight_decay"] else p.grad for p in live]
            if group.get("per_tensor", False):
                for p, g in zip(live, grads, strict=True):
                    h = self._hypergradient(p, g, group)
                    if h is not None:
                        group["lr"] += group["hypergrad_lr"] * h.item()
                    self._adam_update(p, g, group)
                continue
            hs = [h for h in (self._hypergradient(p, g, group) for p, g in zip(live, grads, strict=True))
                  if h is not None]
            if hs:
                group["lr"] += group["hypergrad_lr"] * torch.stack(hs).sum().item()
            for p, g in zip(live, grads, strict=True):
                self._adam_update(p, g, group)
        return loss

    def _hypergradient(self, p: torch.Tensor, g: torch.Tensor, group: dict) -> torch.Tensor | None:
        """grad . u_{t-1} over one tensor (float64), or None before its first step."""
        state = self.state[p]
        if not state:
            state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        t = state["step"]
        if t == 0:
            return None
        beta1, beta2 = group["betas"]
        scale = (1 - beta2**t) ** 0.5 / (1 - beta1**t)
        direction = state["exp_avg"] / (state["exp_avg_sq"].sqrt() + group["eps"])
        return scale * torch.dot(g.reshape(-1), direction.reshape(-1)).double()

    def _adam_update(self, p: torch.Tensor, g: torch.Tensor, group: dict) -> None:
        state = self.state[p]
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t = state["step"]
        state["exp_avg"].mul_(beta1).add_(g, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        step_size = group["lr"] * (1 - beta2**t) ** 0.5 / (1 - beta1**t)
        p.addcdiv_(state["exp_avg"], state["exp_avg_sq"].sqrt() + group["eps"], value=-step_size)
