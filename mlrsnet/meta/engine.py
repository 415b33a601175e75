"""The bilevel engine: meta-learns MLR-SNet on the meta-validation split (Shu et al., Alg. 1).

Every ``meta_interval`` inner iterations, at weights theta with training loss L_train:

1. lookahead: theta'(phi) = theta - lr_phi * d, with lr_phi = MLR-SNet_phi(L_train) and d the
   optimiser's update direction (K >= 1 unrolled steps with the ``higher`` backend);
2. meta loss L_meta(theta'(phi)) on a meta-validation batch;
3. phi <- Adam(phi, dL_meta/dphi) (lr 1e-3, weight decay 1e-4 by default);
4. the caller then takes the real step with the *updated* net.

Backends:

- ``exact``: the one-step closed form dL_meta/dlr = -<grad L_meta(theta'), d>
  (:mod:`mlrsnet.meta.hypergrad`), then dL/dphi = dL/dlr * dlr/dphi. One extra forward/backward on
  the meta batch and no second-order graph. SGD (momentum, nesterov, weight decay) and Adam/AdamW.
- ``higher``: unrolls K >= 1 steps through ``higher.innerloop_ctx`` with the LR passed as a tensor
  (``diffopt.step(loss, override={'lr': [...]})``), differentiating through the optimiser.

The lookahead never changes the real model's weights, BatchNorm running statistics or optimiser state:
``exact`` evaluates theta' with ``torch.func.functional_call`` on cloned buffers; ``higher`` works on
copies of the weights and optimiser state and the engine restores the buffers it shares.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from mlrsnet.errors import ConfigError
from mlrsnet.meta.hypergrad import update_direction
from mlrsnet.net import MLRSNet
from mlrsnet.tasks.base import Task

BACKENDS = ("exact", "higher")


class MetaEngine:
    """Owns MLR-SNet's meta-optimiser and performs meta steps for one (task, model, optimiser)."""

    def __init__(
        self,
        net: MLRSNet,
        task: Task,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        backend: str = "exact",
        K: int = 1,
        meta_lr: float = 1e-3,
        meta_weight_decay: float = 1e-4,
        grad_clip: float | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"unknown meta backend {backend!r}; use meta.backend=exact or meta.backend=higher")
        if K < 1:
            raise ConfigError(f"meta.K must be >= 1, got {K}")
        if backend == "exact" and K != 1:
            raise ConfigError("the 'exact' backend is the one-step closed form; use meta.backend=higher for K > 1")
        self.net = net
        self.task = task
        self.model = model
        self.optimizer = optimizer
        self.backend = backend
        self.K = int(K)
        self.grad_clip = grad_clip
        self.meta_optimizer = torch.optim.Adam(net.parameters(), lr=meta_lr, weight_decay=meta_weight_decay)
        self._names = [n for n, _ in model.named_parameters()]

    def state_dict(self) -> dict:
        return {"meta_optimizer": self.meta_optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])

    def _net_input(self, loss: torch.Tensor) -> torch.Tensor:
        return loss.detach() / self.task.info.loss_scale

    def meta_step(self, batch: tuple, train_loss: torch.Tensor) -> torch.Tensor:
        """One meta update of MLR-SNet. For ``exact``, the model's ``.grad`` must hold the (clipped)
        gradient of ``train_loss`` at the current weights, as it does right before
        ``optimizer.step()``. Returns the detached meta loss."""
        self.meta_optimizer.zero_grad(set_to_none=True)
        if self.backend == "exact":
            meta_loss = self._exact(train_loss)
        else:
            meta_loss = self._higher(batch, train_loss)
        self.meta_optimizer.step()
        return meta_loss

    def hypergradient(self, batch: tuple, train_loss: torch.Tensor) -> torch.Tensor:
        """Compute dL_meta/dphi into the net's ``.grad`` without stepping (for tests and tools)."""
        self.meta_optimizer.zero_grad(set_to_none=True)
        if self.backend == "exact":
            return self._exact(train_loss)
        return self._higher(batch, train_loss)

    def _exact(self, train_loss: torch.Tensor) -> torch.Tensor:
        lr, _ = self.net(self._net_input(train_loss), self.net.state)
        dirs = [d for group in update_direction(self.optimizer) for d in group]
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        named = dict(zip(self._names, self.model.parameters(), strict=True))
        by_id = {id(p): n for n, p in named.items()}
        lr_value = lr.detach()
        lookahead: dict[str, torch.Tensor] = {}
        moved: list[tuple[torch.Tensor, torch.Tensor]] = []
        with torch.no_grad():
            for p, d in zip(params, dirs, strict=True):
                if d is None:
                    continue
                q = (p - lr_value * d).requires_grad_(True)
                lookahead[by_id[id(p)]] = q
                moved.append((q, d))
        for n, p in named.items():
            lookahead.setdefault(n, p.detach())
        buffers = {n: b.clone() for n, b in self.model.named_buffers()}
        meta_batch = self.task.meta_batch()

        def forward(*args: torch.Tensor) -> torch.Tensor:
            return functional_call(self.model, {**lookahead, **buffers}, args)

        meta_loss = self.task.loss(forward, meta_batch)
        grads = torch.autograd.grad(meta_loss, [q for q, _ in moved], allow_unused=True)
        hypergrad = torch.zeros((), device=lr.device, dtype=lr.dtype)
        for g, (_, d) in zip(grads, moved, strict=True):
            if g is not None:
                hypergrad = hypergrad - (g * d).sum().to(lr.dtype)
        lr.backward(hypergrad)
        return meta_loss.detach()

    def _higher(self, batch: tuple, train_loss: torch.Tensor) -> torch.Tensor:
        import higher

        import mlrsnet.meta.higher_optim  # noqa: F401  (torch-exact Adam/AdamW for higher)

        saved_buffers = [b.detach().clone() for b in self.model.buffers()]
        n_groups = len(self.optimizer.param_groups)
        state = self.net.state
        try:
            with higher.innerloop_ctx(
                self.model, self.optimizer, copy_initial_weights=True, track_higher_grads=True
            ) as (fmodel, diffopt):
                for k in range(self.K):
                    inner_batch = batch if k == 0 else self.task.random_train_batch()
                    inner_loss = self.task.loss(fmodel, inner_batch)
                    lr, new_state = self.net(self._net_input(inner_loss), state)
                    state = (new_state[0].detach(), new_state[1].detach())
                    diffopt.step(inner_loss, override={"lr": [lr] * n_groups}, grad_callback=self._clip_callback)
                meta_loss = self.task.loss(fmodel, self.task.meta_batch())
                meta_loss.backward(inputs=list(self.net.parameters()))
        finally:
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), saved_buffers, strict=True):
                    b.copy_(saved)
        return meta_loss.detach()

    def _clip_callback(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Differentiable counterpart of ``clip_grad_norm_`` for the unrolled steps."""
        if not self.grad_clip:
            return grads
        present = [g for g in grads if g is not None]
        norm = torch.sqrt(sum((g * g).sum() for g in present))
        coef = torch.clamp(self.grad_clip / (norm + 1e-6), max=1.0)
        return [None if g is None else g * coef for g in grads]
