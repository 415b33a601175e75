"""Differentiable Adam / AdamW for ``higher`` that match ``torch.optim`` exactly.

higher 0.2.1 ships an Adam with the pre-1.0 epsilon placement
(``lr*sqrt(bc2)/bc1 * m / (sqrt(v) + eps)``, whereas torch computes
``lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)``) and no AdamW at all. The lookahead must take the step
the real optimiser would take, so both are registered here with torch's formulas; importing this
module (done by :mod:`mlrsnet.meta.engine`) replaces higher's mapping for ``Adam`` and adds ``AdamW``.
"""

from __future__ import annotations

import higher
import torch
from higher.optim import DifferentiableOptimizer, _maybe_mask


class DifferentiableTorchAdam(DifferentiableOptimizer):
    """``torch.optim.Adam`` (and, with ``decoupled=True``, ``AdamW``) as a differentiable step."""

    decoupled = False

    def _update(self, grouped_grads, **kwargs) -> None:  # noqa: ANN001 - higher's signature
        for group_idx, (group, grads) in enumerate(zip(self.param_groups, grouped_grads, strict=True)):
            if group.get("amsgrad", False):
                raise NotImplementedError("amsgrad is not supported by the differentiable Adam")
            beta1, beta2 = group["betas"]
            wd = group["weight_decay"]
            decoupled = self.decoupled or bool(group.get("decoupled_weight_decay", False))
            lr = group["lr"]
            for p_idx, (p, g) in enumerate(zip(group["params"], grads, strict=True)):
                if g is None:
                    continue
                if group.get("maximize", False):
                    g = -g
                state = self.state[group_idx][p_idx]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p.data)
                    state["exp_avg_sq"] = torch.zeros_like(p.data)
                step = float(state["step"]) + 1.0
                state["step"] = step
                if wd != 0 and not decoupled:
                    g = g + wd * p
                m = state["exp_avg"] * beta1 + (1 - beta1) * g
                v = state["exp_avg_sq"] * beta2 + (1 - beta2) * g * g
                _maybe_mask(v, v == 0.0)  # d sqrt(v)/dv is infinite at 0; zero those second-order terms
                state["exp_avg"], state["exp_avg_sq"] = m, v
                bc1 = 1 - beta1**step
                bc2_sqrt = (1 - beta2**step) ** 0.5
                update = (m / bc1) / (v.sqrt() / bc2_sqrt + group["eps"])
                if wd != 0 and decoupled:
                    update = update + wd * p
                group["params"][p_idx] = p - lr * update


class DifferentiableTorchAdamW(DifferentiableTorchAdam):
    decoupled = True


higher.register_optim(torch.optim.Adam, DifferentiableTorchAdam)
higher.register_optim(torch.optim.AdamW, DifferentiableTorchAdamW)
