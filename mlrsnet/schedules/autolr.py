r"""AutoLR-style LR tuning by short probes (an interpretation, not the published algorithm).

Kwatra et al., "AutoLR: A Method for Automatic Tuning of Learning Rate" / LRTuner (Microsoft
Research, 2021) tune the LR online by exploring candidate LRs for a few steps and fitting the
loss; their exact rule is not public. This module implements **our documented interpretation**:

Every ``interval`` steps (at steps 0, interval, 2*interval, ...), :meth:`AutoLRTuner.maybe_tune`

1. snapshots the model (parameters and buffers), the optimizer state and the RNG state;
2. for each factor ``f`` in ``factors`` (default 1/4, 1/2, 1, 2, 4): restores the snapshot, sets
   every group's LR to ``f * lr_g``, trains ``horizon`` steps on the given batches (cycled if
   fewer than ``horizon`` are given) and records ``L(f)``, the mean loss of the probed model over
   those batches;
3. takes the best probe and its two neighbours in ``x = ln f``, fits ``L ~ a x^2 + b x + c``
   through them (``numpy.polyfit``) and picks ``f* = exp(-b / 2a)``, clipped to the neighbours'
   range, when ``a > 0``; otherwise (the best probe is at an end of the range, a neighbour
   diverged, or the fit is not convex) the best probe's factor; the smallest factor if every
   probe diverged. The fit is local because loss against ln(LR) is lopsided (it climbs steeply
   once the LR leaves the stable range): a parabola through all probes is dragged by the far
   ones and lands short of the minimum;
4. restores the snapshot (gradients included, so it may be called at any point of an iteration)
   and sets ``lr_g <- clip(f* * lr_g, min_lr, max_lr)``.

Between tuning steps the LR is held. Each probe starts from the same RNG state, and the RNG is
put back afterwards, so probing does not change the randomness of the main run.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer

from mlrsnet.errors import ConfigError
from mlrsnet.schedules._rng import rng_replayer

__all__ = ["AutoLRTuner", "choose_factor"]


def choose_factor(factors: Sequence[float], losses: Sequence[float]) -> float:
    """Step 3 of the module docstring: the LR multiplier chosen from probe ``losses`` at ``factors``."""
    probes = sorted((math.log(f), loss) for f, loss in zip(factors, losses, strict=True))
    finite = [i for i, (_, loss) in enumerate(probes) if math.isfinite(loss)]
    if not finite:
        return min(factors)
    best = min(finite, key=lambda i: probes[i][1])
    window = probes[best - 1:best + 2] if 0 < best < len(probes) - 1 else []
    if len(window) == 3 and all(math.isfinite(loss) for _, loss in window):
        xs, ys = zip(*window, strict=True)
        a, b, _ = np.polyfit(xs, ys, 2)
        if a > 0:
            return math.exp(min(max(-b / (2 * a), xs[0]), xs[2]))
    return math.exp(probes[best][0])


class AutoLRTuner:
    """Periodic probe-and-fit LR tuning (see the module docstring; an interpretation of AutoLR).

    ``loss_fn(model, batch)`` returns the scalar training loss of ``model`` on ``batch``; it must
    not call ``backward`` or step the optimizer.
    """

    def __init__(self, optimizer: Optimizer, model: nn.Module,
                 loss_fn: Callable[[nn.Module, Any], torch.Tensor], interval: int, horizon: int,
                 factors: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0), min_lr: float = 1e-6,
                 max_lr: float = 10.0) -> None:
        if interval < 1 or horizon < 1:
            raise ConfigError(f"AutoLR: interval={interval} and horizon={horizon} must both be >= 1")
        if len(factors) < 2 or any(f <= 0 for f in factors):
            raise ConfigError(f"AutoLR: factors={list(factors)} must be at least two positive multipliers")
        if not 0 < min_lr <= max_lr:
            raise ConfigError(f"AutoLR: need 0 < min_lr <= max_lr (got {min_lr}, {max_lr})")
        self.optimizer = optimizer
        self.model = model
        self.loss_fn = loss_fn
        self.interval = interval
        self.horizon = horizon
        self.factors = [float(f) for f in factors]
        self.min_lr = min_lr
        self.max_lr = max_lr
        self.history: list[dict[str, Any]] = []

    def maybe_tune(self, step: int, batches: Iterable[Any]) -> bool:
        """Tune when ``step`` is a multiple of ``interval`` (using up to ``horizon`` batches drawn from
        ``batches``); otherwise do nothing. Returns whether it tuned."""
        if step % self.interval:
            return False
        probe_batches = list(itertools.islice(iter(batches), self.horizon))
        if not probe_batches:
            raise ConfigError("AutoLR: maybe_tune got no batches to probe with; pass at least one batch")
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        model_state = copy.deepcopy(self.model.state_dict())
        opt_state = copy.deepcopy(self.optimizer.state_dict())
        grads = [None if p.grad is None else p.grad.clone() for p in params]
        base = [float(group["lr"]) for group in self.optimizer.param_groups]
        replay = rng_replayer(params)

        losses = []
        for f in self.factors:
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(copy.deepcopy(opt_state))
            for group, lr in zip(self.optimizer.param_groups, base, strict=True):
                group["lr"] = f * lr
            with replay():
                losses.append(self._probe(probe_batches))

        factor = choose_factor(self.factors, losses)
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(opt_state)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        for group, lr in zip(self.optimizer.param_groups, base, strict=True):
            group["lr"] = min(max(factor * lr, self.min_lr), self.max_lr)
        self.history.append({"step": step, "factors": list(self.factors), "losses": losses, "factor": factor,
                             "lrs": self.get_last_lr()})
        return True

    def _probe(self, batches: list[Any]) -> float:
        for k in range(self.horizon):
            self.optimizer.zero_grad()
            self.loss_fn(self.model, batches[k % len(batches)]).backward()
            self.optimizer.step()
        with torch.no_grad():
            return float(sum(float(self.loss_fn(self.model, b)) for b in batches) / len(batches))

    def get_last_lr(self) -> list[float]:
        """The optimizer's current LRs."""
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """The tuning history (the LRs themselves live in the optimizer's state)."""
        return {"history": copy.deepcopy(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.history = copy.deepcopy(state_dict["history"])
