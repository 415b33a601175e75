"""Optimiser steps as pure tensor maths, and the one-step hypergradient they give.

For an optimiser whose step is ``theta' = theta - lr * d`` with ``d`` independent of ``lr``
(SGD with momentum / nesterov / weight decay / dampening, Adam and AdamW), the chain rule gives

    dL_val(theta') / dlr = -< grad L_val(theta'), d >.

:class:`UpdateRule` computes ``d`` (and the optimiser state after the step) exactly as
``optimizer.step()`` would, from gradients and optimiser state, without mutating either. It is written
with ``torch._foreach_*`` ops (one dispatch per group, not per parameter) and is differentiable, so the
same definition serves the closed form (under ``no_grad``) and the K-step unroll (with a graph through
the gradients, the weights and the carried state).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlrsnet.errors import ConfigError

Tensors = list[torch.Tensor]


def _step_count(state: dict) -> float | torch.Tensor:
    """Adam's step counter after this step. A counter on an accelerator (``capturable`` or ``fused``
    Adam) stays a tensor so that the bias corrections are computed without a host sync."""
    step = state.get("step")
    if step is None:
        return 1.0
    if isinstance(step, torch.Tensor):
        return float(step) + 1.0 if step.device.type == "cpu" else step + 1.0
    return float(step) + 1.0


def _sqrt(v: Tensors) -> Tensors:
    """Element-wise sqrt whose derivative is 0, not inf, where ``v == 0`` (parameters that never had a
    gradient, e.g. unseen embedding rows), so second-order terms through Adam stay finite."""
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in v)):
        return torch._foreach_sqrt(v)
    out = []
    for t in v:
        pos = t > 0
        out.append(torch.where(pos, torch.where(pos, t, torch.ones_like(t)).sqrt(), torch.zeros_like(t)))
    return out


@dataclass(frozen=True)
class UpdateRule:
    """The direction ``d`` of ``theta' = theta - lr * d`` for a torch SGD, Adam or AdamW optimiser."""

    kind: str  # "sgd" | "adam"
    decoupled: bool = False  # AdamW-style weight decay (part of d, applied to the pre-step weights)

    @classmethod
    def supports(cls, optimizer: torch.optim.Optimizer) -> bool:
        return isinstance(optimizer, (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW))

    @classmethod
    def of(cls, optimizer: torch.optim.Optimizer) -> UpdateRule:
        if isinstance(optimizer, torch.optim.AdamW):
            rule = cls("adam", True)
        elif isinstance(optimizer, torch.optim.Adam):
            rule = cls("adam", bool(optimizer.defaults.get("decoupled_weight_decay", False)))
        elif isinstance(optimizer, torch.optim.SGD):
            rule = cls("sgd")
        else:
            raise ConfigError(
                f"the 'exact' meta backend supports SGD, Adam and AdamW, not {type(optimizer).__name__}; "
                "use meta.backend=higher for other optimisers"
            )
        if rule.kind == "adam" and any(g.get("amsgrad", False) for g in optimizer.param_groups):
            raise ConfigError(
                "the 'exact' meta backend does not support Adam(amsgrad=True); use amsgrad=false"
            )
        return rule

    def direction(
        self, group: dict, params: Tensors, grads: Tensors, states: list[dict]
    ) -> tuple[Tensors, list[dict]]:
        """``(d, new_states)`` for the parameters of one param group; ``states[i]`` is the optimiser
        state of ``params[i]`` (read, never written). Differentiable in params, grads and states."""
        if not params:
            return [], []
        if group.get("maximize", False):
            grads = torch._foreach_neg(grads)
        if self.kind == "sgd":
            return self._sgd(group, params, grads, states)
        return self._adam(group, params, grads, states)

    @staticmethod
    def _sgd(group: dict, params: Tensors, grads: Tensors, states: list[dict]) -> tuple[Tensors, list[dict]]:
        wd = group.get("weight_decay", 0.0)
        g = torch._foreach_add(grads, params, alpha=wd) if wd else grads
        momentum = group.get("momentum", 0.0)
        if not momentum:
            return g, [{} for _ in params]
        old = [s.get("momentum_buffer") for s in states]
        have = [i for i, b in enumerate(old) if b is not None]
        bufs = list(g)  # first step: buf = g (torch clones it; nothing here is mutated)
        if have:
            scaled = torch._foreach_mul([old[i] for i in have], momentum)
            dampening = group.get("dampening", 0.0)
            updated = torch._foreach_add(scaled, [g[i] for i in have], alpha=1.0 - dampening)
            for i, b in zip(have, updated, strict=True):
                bufs[i] = b
        d = torch._foreach_add(g, bufs, alpha=momentum) if group.get("nesterov", False) else bufs
        return d, [{"momentum_buffer": b} for b in bufs]

    def _adam(
        self, group: dict, params: Tensors, grads: Tensors, states: list[dict]
    ) -> tuple[Tensors, list[dict]]:
        wd = group.get("weight_decay", 0.0)
        g = torch._foreach_add(grads, params, alpha=wd) if wd and not self.decoupled else grads
        beta1, beta2 = group["betas"]
        # A parameter without state yet (its first step) starts from zero moments, as in torch.
        pairs = list(zip(states, params, strict=True))
        m_old = [s["exp_avg"] if "exp_avg" in s else torch.zeros_like(p) for s, p in pairs]
        v_old = [s["exp_avg_sq"] if "exp_avg_sq" in s else torch.zeros_like(p) for s, p in pairs]
        m = torch._foreach_add(torch._foreach_mul(m_old, beta1), g, alpha=1 - beta1)
        v = torch._foreach_addcmul(torch._foreach_mul(v_old, beta2), g, g, value=1 - beta2)
        steps = [_step_count(s) for s in states]
        step = steps[0]
        if all(isinstance(s, float) and s == step for s in steps):
            bc1 = [1 - beta1**step] * len(params)
            bc2_sqrt = [(1 - beta2**step) ** 0.5] * len(params)
        else:
            bc1 = [1 - beta1**s for s in steps]
            bc2_sqrt = [(1 - beta2**s) ** 0.5 for s in steps]
        denom = torch._foreach_add(torch._foreach_div(_sqrt(v), bc2_sqrt), group["eps"])
        d = torch._foreach_div(m, torch._foreach_mul(denom, bc1))
        if wd and self.decoupled:
            d = torch._foreach_add(d, params, alpha=wd)
        return d, [{"step": s, "exp_avg": a, "exp_avg_sq": b} for s, a, b in zip(steps, m, v, strict=True)]


def update_direction(optimizer: torch.optim.Optimizer) -> list[list[torch.Tensor | None]]:
    """Per param group, the direction ``d`` of the next ``optimizer.step()`` (``None`` for params
    without grad), from the current ``.grad`` and optimiser state."""
    rule = UpdateRule.of(optimizer)
    out: list[list[torch.Tensor | None]] = []
    with torch.no_grad():
        for group in optimizer.param_groups:
            live = [p for p in group["params"] if p.grad is not None]
            states = [optimizer.state.get(p, {}) for p in live]
            dirs, _ = rule.direction(group, live, [p.grad for p in live], states)
            it = iter(dirs)
            out.append([next(it) if p.grad is not None else None for p in group["params"]])
    return out
