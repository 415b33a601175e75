"""One-step hypergradient of a validation loss with respect to the learning rate.

For an optimiser whose step is ``theta' = theta - lr * d`` with ``d`` independent of ``lr``
(SGD with momentum / nesterov / weight decay / dampening, Adam and AdamW), the chain rule gives

    dL_val(theta') / dlr = -< grad L_val(theta'), d >.

:func:`update_direction` computes ``d`` exactly as ``optimizer.step()`` would, from the current
gradients and optimiser state, without mutating either. No second-order graph is needed.
"""

from __future__ import annotations

import torch

from mlrsnet.errors import ConfigError


def _sgd_direction(group: dict, state: dict, p: torch.Tensor) -> torch.Tensor:
    g = p.grad
    if group.get("maximize", False):
        g = -g
    wd = group.get("weight_decay", 0.0)
    if wd:
        g = g.add(p.detach(), alpha=wd)
    momentum = group.get("momentum", 0.0)
    if not momentum:
        return g
    buf = state.get("momentum_buffer")
    buf = g.clone() if buf is None else buf.mul(momentum).add(g, alpha=1.0 - group.get("dampening", 0.0))
    return g.add(buf, alpha=momentum) if group.get("nesterov", False) else buf


def _adam_direction(group: dict, state: dict, p: torch.Tensor, decoupled: bool) -> torch.Tensor:
    if group.get("amsgrad", False):
        raise ConfigError("the 'exact' meta backend does not support Adam(amsgrad=True); use amsgrad=false")
    g = p.grad
    if group.get("maximize", False):
        g = -g
    wd = group.get("weight_decay", 0.0)
    if wd and not decoupled:
        g = g.add(p.detach(), alpha=wd)
    beta1, beta2 = group["betas"]
    step = float(state["step"]) + 1.0 if "step" in state else 1.0
    m = state["exp_avg"].mul(beta1).add(g, alpha=1 - beta1) if "exp_avg" in state else g.mul(1 - beta1)
    v = (
        state["exp_avg_sq"].mul(beta2).addcmul(g, g, value=1 - beta2)
        if "exp_avg_sq" in state
        else g.mul(g).mul(1 - beta2)
    )
    bc1 = 1 - beta1**step
    bc2_sqrt = (1 - beta2**step) ** 0.5
    d = (m / bc1) / (v.sqrt() / bc2_sqrt + group["eps"])
    if wd and decoupled:
        d = d.add(p.detach(), alpha=wd)
    return d


def update_direction(optimizer: torch.optim.Optimizer) -> list[list[torch.Tensor | None]]:
    """Per param group, the direction ``d`` of the next step (``None`` for params without grad)."""
    if isinstance(optimizer, torch.optim.AdamW):
        kind, decoupled = "adam", True
    elif isinstance(optimizer, torch.optim.Adam):
        kind, decoupled = "adam", bool(optimizer.defaults.get("decoupled_weight_decay", False))
    elif isinstance(optimizer, torch.optim.SGD):
        kind, decoupled = "sgd", False
    else:
        raise ConfigError(
            f"the 'exact' meta backend supports SGD, Adam and AdamW, not {type(optimizer).__name__}; "
            "use meta.backend=higher for other optimisers"
        )
    out: list[list[torch.Tensor | None]] = []
    with torch.no_grad():
        for group in optimizer.param_groups:
            dirs: list[torch.Tensor | None] = []
            for p in group["params"]:
                if p.grad is None:
                    dirs.append(None)
                    continue
                state = optimizer.state.get(p, {})
                if kind == "sgd":
                    dirs.append(_sgd_direction(group, state, p))
                else:
                    dirs.append(_adam_direction(group, state, p, decoupled))
            out.append(dirs)
    return out
