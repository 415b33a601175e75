"""The bilevel engine: meta-learns MLR-SNet on the meta-validation split (Shu et al., Alg. 1).

Every ``meta_interval`` inner iterations, at weights theta_0 with training loss L_train:

1. lookahead: theta_{k+1} = theta_k - lr_k * d_k for k < K, with lr_k = MLR-SNet_phi(L_k) and d_k the
   optimiser's update direction (SGD with momentum / nesterov / weight decay, Adam, AdamW;
   :class:`~mlrsnet.meta.hypergrad.UpdateRule`);
2. meta loss L_meta(theta_K(phi)) on a meta-validation batch;
3. phi <- Adam(phi, dL_meta/dphi) (lr 1e-3, weight decay 1e-4 by default);
4. the caller then takes the real step with the *updated* net.

Step 0 needs no second-order graph: theta_0 does not depend on phi, so d_0 is built from the gradient
the caller's backward pass already left in ``.grad`` (no extra forward or backward of the training
batch), theta_1 is a leaf, and the closed form

    dL_meta/dlr_0 = -< dL_meta/dtheta_1, d_0 >

is one dot product per tensor, then chained into phi through lr_0 = MLR-SNet_phi(L_train). For K = 1 a
meta step is therefore one forward and backward on the meta batch plus MLR-SNet's own small graph.

Backends:

- ``exact``: K = 1, the closed form above.
- ``higher``: K >= 1 unrolled steps through the ``higher`` package: ``higher.innerloop_ctx`` with the LR
  passed as a tensor, ``diffopt.step(loss, override={'lr': [...]})``, differentiating through the
  optimiser (torch-exact Adam/AdamW registered by :mod:`mlrsnet.meta.higher_optim`).
- ``unroll``: the same K-step unroll, native and faster: from step 1 on each gradient is taken with
  ``create_graph`` so that the meta-gradient flows through the later gradients, directions and
  optimiser state (second order); it matches ``higher`` to ~1e-9 in float64 (tested). Optimisers
  without an :class:`UpdateRule` fall back to the ``higher`` package.

``first_order=True`` (``unroll`` only, K > 1) drops the second-order terms: the gradients of steps
1..K-1 are taken at detached weights, so dtheta_K/dlr_k = -d_k with d_k treated as a constant. Peak
memory then holds one forward/backward of activations plus the K directions, instead of K graphs of
activations and double-backward buffers; the price is a biased hypergradient that ignores how an
earlier learning rate changes the later gradients (for K = 1 nothing is dropped).

The lookahead never changes the real model's weights, BatchNorm running statistics, gradients or
optimiser state: weights are substituted with ``torch.func.functional_call`` on cloned buffers, and the
optimiser state is read, never written.

MLR-SNet's LSTM state: by default the lookahead reads the carried state without advancing it, so the
net reads every training loss once (the real step's call advances it). ``lookahead_advances_state=True``
is the reference code's behaviour: its lookahead's call on the training loss advances the state, and
the real step's call then advances it again on the same loss (with the updated weights), so on a meta
iteration the net reads the loss twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from mlrsnet.errors import ConfigError
from mlrsnet.meta.hypergrad import UpdateRule
from mlrsnet.net import MLRSNet, State
from mlrsnet.tasks.base import Task
from mlrsnet.typed import setting

BACKENDS = ("exact", "higher", "unroll")
COUNTERS = ("global", "epoch", "epoch_start")


def meta_update_due(counter: str, interval: int, global_step: int, step_in_epoch: int) -> bool:
    """Whether the step about to be taken (``global_step`` of the run, ``step_in_epoch`` of its epoch, both from
    0) starts with a meta update: ``global``, every ``interval`` steps of the run from its first (ours);
    ``epoch``, ``(i + 1) % interval == 0`` with ``i`` counted within the epoch, as the reference's
    image-classification meta_train.py (so ``floor(steps_per_epoch / interval)`` per epoch: one per CIFAR epoch
    of 383 steps at 300, none in an epoch shorter than ``interval``); ``epoch_start``, ``i % interval == 0``
    within the epoch, as its language-modeling meta_train.py (the epoch's first step always has one)."""
    if counter == "global":
        return global_step % interval == 0
    if counter == "epoch":
        return (step_in_epoch + 1) % interval == 0
    if counter == "epoch_start":
        return step_in_epoch % interval == 0
    raise ValueError(f"meta counter must be one of {', '.join(COUNTERS)}, got {counter!r}")


@dataclass
class MetaConfig:
    """The ``meta`` section: how MLR-SNet is meta-trained in place."""

    backend: str = setting("exact", "exact (one-step closed form) | higher (K-step unroll via higher.innerloop_ctx) "
                           "| unroll (the same unroll, native and faster)", choices=BACKENDS)
    K: int = setting(1, "unrolled inner steps (higher / unroll backends)", ge=1)
    first_order: bool = setting(False, "unroll, K > 1: drop second-order terms; peak memory ~flat in K, "
                                "hypergradient biased")
    lookahead_advances_state: bool = setting(
        False, "true: the reference's double read (the lookahead's call advances the net's LSTM state, the real "
        "step advances it again on the same loss); false: read once")
    interval: int = setting(1, "meta step every `interval` inner iterations (counted per `counter`)", ge=1)
    counter: str = setting("global", "how `interval` counts: global (every `interval` steps of the run, from its "
                           "first) | epoch ((i + 1) % interval == 0, i the step within the epoch: the reference's "
                           "image-classification meta_train.py; none in an epoch under `interval` steps) | "
                           "epoch_start (i % interval == 0 within the epoch: its language-modeling meta_train.py)",
                           choices=COUNTERS)
    lr: float = setting(1e-3, "Adam on MLR-SNet's weights", gt=0)
    weight_decay: float = setting(1e-4, "Adam's weight decay on MLR-SNet's weights", ge=0)
    batch_size: int = setting(100, "meta-validation batch size", ge=1)

    def check(self, prefix: str) -> None:
        if self.backend == "exact" and self.K != 1:
            raise ConfigError(f"the 'exact' backend is the one-step closed form; use {prefix}backend=unroll (or "
                              f"higher) for {prefix}K > 1")


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
        first_order: bool = False,
        lookahead_advances_state: bool = False,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(
                f"unknown meta backend {backend!r}; use meta.backend=exact, higher or unroll"
            )
        if K < 1:
            raise ConfigError(f"meta.K must be >= 1, got {K}")
        if backend == "exact" and K != 1:
            raise ConfigError(
                "the 'exact' backend is the one-step closed form; use meta.backend=unroll (or higher) for K > 1"
            )
        self.net = net
        self.task = task
        self.model = model
        self.optimizer = optimizer
        self.backend = backend
        self.K = int(K)
        self.grad_clip = grad_clip
        self.first_order = bool(first_order)
        self.lookahead_advances_state = bool(lookahead_advances_state)
        native = UpdateRule.supports(optimizer)
        self.use_higher_library = backend == "higher" or (backend == "unroll" and not native)
        if self.use_higher_library and first_order:
            raise ConfigError(
                "meta.first_order needs meta.backend=unroll with SGD, Adam or AdamW; the higher package "
                f"(backend=higher, or {type(optimizer).__name__}) always differentiates through every step"
            )
        # fused: one kernel for all of MLR-SNet's tensors, several times faster than torch's default on CPU
        self.meta_optimizer = torch.optim.Adam(
            net.parameters(), lr=meta_lr, weight_decay=meta_weight_decay, fused=True
        )
        self._names = {id(p): n for n, p in model.named_parameters()}
        self._has_rnn = any(isinstance(m, nn.RNNBase) for m in model.modules())

    def state_dict(self) -> dict:
        return {"meta_optimizer": self.meta_optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])

    def _net_input(self, loss: torch.Tensor) -> torch.Tensor:
        return loss.detach() / self.task.info.loss_scale

    def meta_step(self, batch: tuple, train_loss: torch.Tensor) -> torch.Tensor:
        """One meta update of MLR-SNet. The model's ``.grad`` must hold the (clipped) gradient of
        ``train_loss`` on ``batch`` at the current weights, as it does right before ``optimizer.step()``.
        Returns the detached meta loss (a device tensor)."""
        meta_loss = self.hypergradient(batch, train_loss)
        self.meta_optimizer.step()
        return meta_loss

    def hypergradient(self, batch: tuple, train_loss: torch.Tensor) -> torch.Tensor:
        """Compute dL_meta/dphi into the net's ``.grad`` without stepping (for tests and tools)."""
        self.meta_optimizer.zero_grad(set_to_none=True)
        if self.use_higher_library:
            return self._higher_library(batch, train_loss)
        return self._unroll(train_loss)

    def _unroll(self, train_loss: torch.Tensor) -> torch.Tensor:
        rule = UpdateRule.of(self.optimizer)
        groups = self.optimizer.param_groups
        # Only parameters the optimiser would move (those with a gradient) become lookahead tensors.
        live = [[p for p in g["params"] if p.grad is not None] for g in groups]
        names = [self._names[id(p)] for ps in live for p in ps]
        base = {n: p.detach() for n, p in self.model.named_parameters()}
        base.update((n, b.clone()) for n, b in self.model.named_buffers())

        def at(thetas: list[list[torch.Tensor]]) -> Callable[..., Any]:
            weights = {**base, **dict(zip(names, (t for ts in thetas for t in ts), strict=True))}
            return lambda *args: functional_call(self.model, weights, args)

        lr, state = self.net(self._net_input(train_loss), self.net.state)
        self._advance(state)
        thetas: list[list[torch.Tensor]] = []
        opt_states: list[list[dict]] = []
        first_dirs: list[torch.Tensor] = []
        with torch.no_grad():
            for group, ps in zip(groups, live, strict=True):
                theta0 = [p.detach() for p in ps]
                dirs, after = rule.direction(
                    group, theta0, [p.grad for p in ps], [self.optimizer.state.get(p, {}) for p in ps]
                )
                thetas.append([t.requires_grad_(True) for t in _lookahead(theta0, dirs, lr.detach())])
                opt_states.append(after)
                first_dirs += dirs
        theta1 = [t for ts in thetas for t in ts]
        for _ in range(1, self.K):
            state = (state[0].detach(), state[1].detach())
            thetas, opt_states, state = self._inner_step(rule, at, thetas, opt_states, state)
        meta_loss = self.task.meta_loss(at(thetas), self.task.meta_batch())
        # lr_1 .. lr_{K-1} reach phi inside the graph; lr_0 is chained in below.
        net_params = list(self.net.parameters()) if self.K > 1 else []
        grads = torch.autograd.grad(meta_loss, theta1 + net_params, allow_unused=True)
        for p, g in zip(net_params, grads[len(theta1):], strict=True):
            p.grad = g
        dl_dlr = -sum(torch.dot(g.flatten(), d.flatten())
                      for g, d in zip(grads[:len(theta1)], first_dirs, strict=True) if g is not None)
        lr.backward(torch.as_tensor(dl_dlr, dtype=lr.dtype, device=lr.device))
        return meta_loss.detach()

    def _inner_step(
        self,
        rule: UpdateRule,
        at: Callable[[list[list[torch.Tensor]]], Callable[..., Any]],
        thetas: list[list[torch.Tensor]],
        opt_states: list[list[dict]],
        state: State,
    ) -> tuple[list[list[torch.Tensor]], list[list[dict]], State]:
        """theta_{k+1} = theta_k - lr_k * d_k on a fresh training batch: second order, or with the
        gradient and direction taken at detached weights when ``first_order``."""
        points = thetas
        if self.first_order:
            points = [[t.detach().requires_grad_(True) for t in ts] for ts in thetas]
        flat = [t for ts in points for t in ts]
        with contextlib.nullcontext() if self.first_order else self._double_backward_ready():
            loss = self.task.loss(at(points), self.task.random_train_batch())
            grads = torch.autograd.grad(loss, flat, create_graph=not self.first_order, allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for t, g in zip(flat, grads, strict=True)]
        grads = self._clip(grads)
        lr, new_state = self.net(self._net_input(loss), state)
        new_thetas, new_opt_states, pos = [], [], 0
        for group, ts, xs, sts in zip(self.optimizer.param_groups, thetas, points, opt_states, strict=True):
            with torch.no_grad() if self.first_order else contextlib.nullcontext():
                dirs, after = rule.direction(group, xs, grads[pos:pos + len(xs)], sts)
            new_thetas.append(_lookahead(ts, dirs, lr))
            new_opt_states.append(after)
            pos += len(xs)
        return new_thetas, new_opt_states, new_state

    def _higher_library(self, batch: tuple, train_loss: torch.Tensor) -> torch.Tensor:
        import higher

        import mlrsnet.meta.higher_optim  # noqa: F401  (torch-exact Adam/AdamW for higher)

        saved_buffers = [b.detach().clone() for b in self.model.buffers()]
        n_groups = len(self.optimizer.param_groups)
        state = self.net.state
        try:
            with self._double_backward_ready(), higher.innerloop_ctx(
                self.model, self.optimizer, copy_initial_weights=True, track_higher_grads=True
            ) as (fmodel, diffopt):
                for k in range(self.K):
                    inner_batch = batch if k == 0 else self.task.random_train_batch()
                    inner_loss = self.task.loss(fmodel, inner_batch)
                    lr, new_state = self.net(self._net_input(inner_loss), state)
                    state = (new_state[0].detach(), new_state[1].detach())
                    if k == 0:
                        self._advance(state)
                    diffopt.step(inner_loss, override={"lr": [lr] * n_groups}, grad_callback=self._clip)
                meta_loss = self.task.meta_loss(fmodel, self.task.meta_batch())
                meta_loss.backward(inputs=list(self.net.parameters()))
        finally:
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), saved_buffers, strict=True):
                    b.copy_(saved)
        return meta_loss.detach()

    def _advance(self, state: State) -> None:
        """The reference's double read: the state after the lookahead's call on the training loss
        becomes the net's carried state (detached), which the real step then advances again."""
        if self.lookahead_advances_state:
            self.net.state = state

    def _double_backward_ready(self) -> contextlib.AbstractContextManager:
        """Forward passes whose gradients are differentiated again: cuDNN's RNN kernels have no double
        backward, so an RNN model runs them without cuDNN (no effect on the CPU)."""
        return torch.backends.cudnn.flags(enabled=False) if self._has_rnn else contextlib.nullcontext()

    def _clip(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Differentiable counterpart of ``clip_grad_norm_`` for the unrolled steps."""
        if not self.grad_clip:
            return grads
        present = [g for g in grads if g is not None]
        norm = torch.sqrt(sum((g * g).sum() for g in present))
        coef = torch.clamp(self.grad_clip / (norm + 1e-6), max=1.0)
        return [None if g is None else g * coef for g in grads]


def _lookahead(params: list[torch.Tensor], dirs: list[torch.Tensor], lr: torch.Tensor) -> list[torch.Tensor]:
    """``params - lr * dirs`` with a graph to ``lr`` (and to params / dirs where they carry one)."""
    if not params:
        return []
    return torch._foreach_sub(params, torch._foreach_mul(dirs, [lr] * len(dirs)))
