r"""MARTHE and RTHO: the LR of SGD (with momentum) learned online by forward-mode hypergradients.

Donini, Franceschi, Pontil, Majumder, Frasconi, "MARTHE: Scheduling the Learning Rate Via Online
Hypergradients", IJCAI 2020 (reference code: awslabs/adatune, ``MuSGD``); RTHO is Franceschi,
Donini, Frasconi, Pontil, "Forward and Reverse Gradient-Based Hyperparameter Optimization", ICML
2017, MARTHE's special case ``mu = 1``.

SGD with heavy-ball momentum ``m`` and L2 weight decay ``wd`` takes, at step ``t`` with LR ``eta_t``,
``g_t = grad L_t(theta_t) + wd * theta_t``, ``d_t = m * d_{t-1} + g_t`` (``d_0 = g_0``, torch's
buffer) and ``theta_{t+1} = theta_t - eta_t * d_t``. Forward mode carries the tangents
``Z_t = d theta_t / d eta`` and ``V_t = d d_{t-1} / d eta`` (``Z_0 = V_0 = 0``), the derivatives with
respect to a perturbation of every LR so far, evaluated at the LRs actually used::

    V_{t+1} = mu * (m * V_t + H_t Z_t)
    Z_{t+1} = mu * (Z_t - eta_t * (m * V_t + H_t Z_t)) - d_t        (= mu (I - eta_t H_t) Z_t - d_t, m = 0)
    h_t     = grad E(theta_{t+1}) . Z_{t+1}
    eta_{t+1} = max(eta_t - beta * h_t, 0)

with ``H_t`` the Hessian of the training objective (loss plus ``wd/2 |theta|^2``) on the batch of step
``t`` (a Hessian-vector product by double backward), and ``E`` the loss on a batch of the
meta-validation split (never the test split). With ``mu = 1`` (RTHO) ``h_t`` is exactly
``d E(theta_{t+1}) / d eta``; ``mu = 0`` is hypergradient descent on the validation loss
(``h_t = -grad E(theta_{t+1}) . d_t``); MARTHE's ``mu`` in ``[0, 1]`` discounts old steps.

``mu="auto"`` is MARTHE's adaptive discount, as in the authors' code: after each LR update,
``q = eta_{t+1} / (grad E(theta_{t+1}) . grad L_t(theta_t))``, ``c <- c * sign(mu) + mu``,
``mu <- clip(q, 0, 1)^(1 / (1 + c))``, starting from the authors' ``mu = -1``, ``c = 0`` (so after the
first step ``mu`` is 1 if ``q >= 1`` and 0 otherwise; ``grad L_t`` is the loss gradient without weight
decay, and ``q = 0`` when the dot product is not positive). ``clip``
clamps each element of the gradients and Hessian-vector products that enter the hypergradient (not
the gradients of the real step) to ``[-clip, clip]``, as the authors' ``grad_clipping`` (default 100).

Deviation from the authors' code, deliberately: it multiplies ``H_t Z_t`` by the *initial* LR at every
step (``self.lr`` is read once in ``__init__`` and never updated), so its ``Z`` is not the derivative
of the trajectory once the LR has moved. Here the tangent uses the current ``eta_t``; the test
``tests/test_marthe.py`` checks ``h_t`` against the derivative of the unrolled trajectory by autograd.
The authors also take ``E`` on the test set; here it is the meta-validation split.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from mlrsnet.errors import ConfigError

__all__ = ["MartheTuner"]


def _flat(tensors: list[torch.Tensor | None], like: list[torch.Tensor]) -> torch.Tensor:
    parts = [torch.zeros_like(p) if t is None else t for t, p in zip(tensors, like, strict=True)]
    return torch.cat([t.reshape(-1) for t in parts])


class MartheTuner:
    """MARTHE (``mu`` a number in [0, 1] or ``"auto"``) / RTHO (``mu=1``) on a ``torch.optim.SGD``
    (see the module docstring for the equations). Each :meth:`step` takes the real optimiser step and
    then updates the LR of every param group to ``eta_{t+1}``.

    ``hyper_lr`` is ``beta``; ``eta_max`` optionally caps the LR (the reference has no cap)."""

    def __init__(self, optimizer: Optimizer, *, hyper_lr: float = 1e-5, mu: float | str = "auto",
                 clip: float | None = 100.0, eta_max: float | None = None) -> None:
        if not isinstance(optimizer, torch.optim.SGD):
            raise ConfigError(f"MARTHE/RTHO drive torch.optim.SGD, got {type(optimizer).__name__}; "
                              "use optimizer.name=sgd")
        groups = optimizer.param_groups
        if len({float(g["lr"]) for g in groups}) != 1 or len({g["momentum"] for g in groups}) != 1 \
                or len({g["weight_decay"] for g in groups}) != 1:
            raise ConfigError("MARTHE/RTHO learn one LR: give every param group the same lr, momentum "
                              "and weight_decay")
        g0 = groups[0]
        if g0.get("nesterov") or g0.get("dampening", 0) or g0.get("maximize"):
            raise ConfigError("MARTHE/RTHO support heavy-ball momentum only; set nesterov=false, dampening=0")
        if hyper_lr < 0 or (clip is not None and clip <= 0) or (eta_max is not None and eta_max <= 0):
            raise ConfigError(f"MARTHE: hyper_lr={hyper_lr} must be >= 0, clip and eta_max > 0 or null")
        if mu != "auto" and not (isinstance(mu, int | float) and 0.0 <= mu <= 1.0):
            raise ConfigError(f"MARTHE: mu={mu!r} must be a number in [0, 1] or 'auto'")
        self.optimizer = optimizer
        self.params = [p for g in groups for p in g["params"]]
        self.momentum = float(g0["momentum"])
        self.weight_decay = float(g0["weight_decay"])
        self.hyper_lr = float(hyper_lr)
        self.adaptive = mu == "auto"
        self.mu = -1.0 if self.adaptive else float(mu)
        self.c = 0.0
        self.clip = clip
        self.eta_max = eta_max
        self.eta = float(g0["lr"])
        self.z: torch.Tensor | None = None  # d theta_t / d eta
        self.v: torch.Tensor | None = None  # d d_{t-1} / d eta
        self.last_hypergradient = math.nan

    def _clamp(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.clip is None else x.clamp(-self.clip, self.clip)

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        """d_t as torch.optim.SGD is about to compute it (the buffer after this step)."""
        if not self.momentum:
            return grad
        bufs = [self.optimizer.state.get(p, {}).get("momentum_buffer") for p in self.params]
        if any(b is None for b in bufs):
            return grad
        return self.momentum * _flat(bufs, self.params) + grad

    def step(self, train_loss: Callable[[], torch.Tensor], val_loss: Callable[[], torch.Tensor]) -> float:
        """One step: ``train_loss()`` is the training loss of this step's batch at ``theta_t`` (recomputed
        with a graph for the Hessian-vector product; the step itself uses the gradients already in
        ``.grad``), ``val_loss()`` the loss E on a meta-validation batch, called after the step.
        Returns the hypergradient ``h_t``."""
        params = self.params
        with torch.no_grad():
            theta = _flat([p.detach() for p in params], params)
            loss_grad = _flat([p.grad for p in params], params)
            grad = loss_grad + self.weight_decay * theta
            direction = self._direction(grad)
        if self.z is None:
            self.z, self.v = torch.zeros_like(theta), torch.zeros_like(theta)
        if bool(self.z.any()):
            with torch.enable_grad():
                grads = torch.autograd.grad(train_loss(), params, create_graph=True, allow_unused=True)
                hvp = torch.autograd.grad(_flat(list(grads), params), params, grad_outputs=self.z,
                                          allow_unused=True)
            hz = self._clamp(_flat(list(hvp), params).detach()) + self.weight_decay * self.z
        else:
            hz = torch.zeros_like(theta)
        with torch.no_grad():
            dv = self.momentum * self.v + hz
            self.z = self.mu * (self.z - self.eta * dv) - self._clamp(direction)
            self.v = self.mu * dv
        self.optimizer.step()

        with torch.enable_grad():
            e_grads = torch.autograd.grad(val_loss(), params, allow_unused=True)
        e_grad = self._clamp(_flat(list(e_grads), params))
        h = float(e_grad @ self.z)
        eta = max(self.eta - self.hyper_lr * h, 0.0)
        self.eta = eta if self.eta_max is None else min(eta, self.eta_max)
        for group in self.optimizer.param_groups:
            group["lr"] = self.eta
        if self.adaptive:
            self._adapt_mu(float(e_grad @ self._clamp(loss_grad)))
        self.last_hypergradient = h
        return h

    def _adapt_mu(self, dot: float) -> None:
        # The authors' rule, with their start: mu = -1 makes c = -1 and the first exponent 1/0, i.e.
        # mu = 1 if q >= 1 else 0 after the first step.
        q = min(max(self.eta / dot, 0.0), 1.0) if dot > 0 else 0.0
        self.c = self.c * math.copysign(1.0, self.mu) * (self.mu != 0) + self.mu
        self.mu = (1.0 if q >= 1.0 else 0.0) if self.c == -1.0 else q ** (1.0 / (1.0 + self.c))

    def state_dict(self) -> dict[str, Any]:
        """The tangents, the LR and the discount (tensors on the CPU)."""
        return {"eta": self.eta, "mu": self.mu, "c": self.c, "last_hypergradient": self.last_hypergradient,
                "z": None if self.z is None else self.z.cpu(), "v": None if self.v is None else self.v.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        device = self.params[0].device
        self.eta, self.mu, self.c = float(state["eta"]), float(state["mu"]), float(state["c"])
        self.last_hypergradient = float(state["last_hypergradient"])
        self.z = None if state["z"] is None else state["z"].to(device)
        self.v = None if state["v"] is None else state["v"].to(device)
