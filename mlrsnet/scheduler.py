"""A frozen, meta-learned MLR-SNet as a ``torch.optim.lr_scheduler`` scheduler: plug-and-play transfer.

Two lines in any training loop::

    sched = MLRSNetScheduler(optimizer)        # the shipped checkpoint; or checkpoint=PATH / an MLRSNet
    ...
    loss.backward(); optimizer.step(); sched.step(loss)

The net is frozen (no gradients, eval mode). Every :meth:`MLRSNetScheduler.step` feeds the loss to the
LSTM (its state carried across steps) and sets the learning rate of the next ``optimizer.step()``::

    s_t       = MLRSNet_k(loss_t / loss_scale) / gamma_k      in (0, 1), the net's normalised output
    lr_{g,t}  = scale_g * s_t                                 for every param group g

``gamma_k`` is the output scale stored with checkpoint ``k`` (the paper's gamma), so ``s_t`` is what the
net learned independently of the task it was meta-trained on. ``scale_g`` fixes the size of the LRs:

- ``scale=None`` (default): ``scale_g`` is group g's initial LR, as with ``LambdaLR``: the optimizer's
  LR is the largest LR the net can emit and every group keeps its own;
- ``scale=<float>``: group 0 gets ``scale * s_t`` and the other groups keep their initial ratio to
  group 0 (``scale_g = scale * lr0_g / lr0_0``). The paper's protocol recomputes gamma for the new task
  from its initial loss L0 and class count C: ``scale=mlrsnet.compute_gamma(L0, C)``;
- ``scale="checkpoint"``: as a float, with each checkpoint's own gamma (group 0 then gets exactly the
  LR the net emits, ``MLRSNet_k(loss_t / loss_scale)``).

Several checkpoints (a list) implement the paper's multi-checkpoint protocol: with ``n`` of them and
``total_steps`` steps, checkpoint ``k`` reads the losses of steps ``[k T / n, (k + 1) T / n)``; the LSTM
state carries over from one to the next. ``loss_scale`` is the task's loss normaliser: 1 for
classification, ``ln(vocabulary size)`` for language models, as in the paper.

The LR stays a device tensor where the optimizer reads it on the device (``fused=True``, or Adam /
AdamW with ``capturable=True``), so on CUDA a step never waits for the host; other optimizers get a
Python float (:func:`mlrsnet.schedules.base.set_lr`: one sync per step, which their own step would do
anyway).

:class:`mlrsnet.schedules.drivers.FrozenMLRSNetDriver` runs the same scheduler inside
:func:`mlrsnet.loop.train_loop` with the paper's timing (the LR of step t from the loss of step t);
:mod:`mlrsnet.transfer` uses it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from mlrsnet.checkpoint import load_mlrsnet
from mlrsnet.errors import CheckpointError
from mlrsnet.net import MLRSNet, State
from mlrsnet.schedules.base import set_lr

__all__ = ["DEFAULT_CHECKPOINT", "MLRSNetScheduler", "load_frozen", "resolve_checkpoint"]

DEFAULT_CHECKPOINT = "checkpoints/digits_cnn_seed0.pt"
_SOURCE_ROOT = Path(__file__).resolve().parents[1]

CheckpointLike = str | os.PathLike | MLRSNet


def resolve_checkpoint(path: str | os.PathLike | None) -> Path:
    """The file a checkpoint argument names: ``None`` is the shipped :data:`DEFAULT_CHECKPOINT`; a
    relative path is looked up in the working directory, then in the source tree (where
    ``checkpoints/`` lives), so the shipped checkpoint is found from any directory."""
    p = Path(DEFAULT_CHECKPOINT if path is None else path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    shipped = _SOURCE_ROOT / p
    return shipped if shipped.exists() else p


def load_frozen(checkpoint: CheckpointLike | None, device: torch.device | str = "cpu") -> MLRSNet:
    """A frozen copy of an MLR-SNet (from a checkpoint path, ``None`` for the shipped one, or a net):
    no gradients, eval mode, on ``device``. A net passed in is copied, never modified."""
    if isinstance(checkpoint, MLRSNet):
        net, label = copy.deepcopy(checkpoint), "the MLRSNet passed in"
    else:
        path = resolve_checkpoint(checkpoint)
        net, label = load_mlrsnet(path, map_location="cpu")[0], f"checkpoint {path}"
    net.reset_state()
    if not float(net.gamma) > 0:
        raise CheckpointError(f"{label} has gamma {float(net.gamma)}; gamma must be positive")
    return net.to(device).requires_grad_(False).eval()


class MLRSNetScheduler(LRScheduler):
    """A frozen MLR-SNet (or a sequence of them) as a torch LR scheduler; see the module docstring.

    Args:
        optimizer: any torch optimizer, any number of param groups.
        checkpoint: a checkpoint path, an :class:`~mlrsnet.net.MLRSNet`, or a sequence of them (the
            multi-checkpoint protocol; needs ``total_steps``). ``None``: the shipped checkpoint.
        scale: ``None`` (each group's initial LR), a positive float, or ``"checkpoint"``.
        loss_scale: the loss is divided by this before it enters the net (``ln(vocab)`` for LMs).
        total_steps: the run's number of steps; required with several checkpoints.
        initial_loss: L0, the loss of the fresh model; if given, the first step's LR is the net's output
            for it (the state is not advanced). Otherwise the first step runs at ``scale_g``.

    Call :meth:`step` with the loss after every ``optimizer.step()``. :meth:`get_last_lr` returns the
    groups' current LRs (device tensors where the optimizer reads them on the device).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        checkpoint: CheckpointLike | Sequence[CheckpointLike] | None = None,
        *,
        scale: float | str | None = None,
        loss_scale: float = 1.0,
        total_steps: int | None = None,
        initial_loss: float | torch.Tensor | None = None,
    ) -> None:
        sources = list(checkpoint) if isinstance(checkpoint, list | tuple) else [checkpoint]
        if not sources:
            raise ValueError("MLRSNetScheduler needs at least one checkpoint")
        if len(sources) > 1 and (total_steps is None or total_steps < len(sources)):
            raise ValueError(
                f"{len(sources)} checkpoints are swapped at equal fractions of training: pass "
                f"total_steps >= {len(sources)} (got {total_steps})"
            )
        if not loss_scale > 0:
            raise ValueError(f"loss_scale must be positive, got {loss_scale}")
        params = [p for g in optimizer.param_groups for p in g["params"]]
        self.device = params[0].device if params else torch.device("cpu")
        self.nets = [load_frozen(src, self.device) for src in sources]
        configs = {tuple(sorted(net.config.to_dict().items())) for net in self.nets}
        if len(configs) > 1:
            raise CheckpointError(
                f"checkpoints {sources} have different MLR-SNet architectures; the LSTM state can only "
                "carry over between nets of one architecture"
            )
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", float(group["lr"]))
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.loss_scale = float(loss_scale)
        self.total_steps = total_steps
        gammas = [float(net.gamma) for net in self.nets]  # host copies, read once
        ratios = [lr / self.base_lrs[0] for lr in self.base_lrs]
        if scale is None:
            self.factors = [[lr / gk for lr in self.base_lrs] for gk in gammas]
        elif scale == "checkpoint":
            self.factors = [list(ratios) for _ in gammas]
        elif isinstance(scale, int | float) and not isinstance(scale, bool) and scale > 0:
            self.factors = [[float(scale) * r / gk for r in ratios] for gk in gammas]
        else:
            raise ValueError(f"scale must be None, 'checkpoint' or a positive number, got {scale!r}")
        self.scale = scale
        self.lstm_state: State | None = None
        self.last_epoch = 0
        self._step_count = 0
        if initial_loss is None:
            self._set_lrs(gammas[0], self.factors[0])  # scale_g: the largest LR the net can emit
        else:
            with torch.no_grad():
                lr, _ = self.nets[0](self._net_input(initial_loss), None)
            self._set_lrs(lr, self.factors[0])

    def _net_input(self, loss: torch.Tensor | float) -> torch.Tensor:
        if isinstance(loss, torch.Tensor):
            x = loss.detach()
            if x.device != self.device:
                x = x.to(self.device)
        else:
            x = torch.tensor(float(loss), device=self.device)
        return x / self.loss_scale

    def _set_lrs(self, lr: torch.Tensor | float, factors: list[float]) -> None:
        set_lr(self.optimizer, lr, factors)
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def net_index(self, step: int) -> int:
        """The checkpoint that reads the loss of ``step`` (0-based)."""
        n = len(self.nets)
        if n == 1:
            return 0
        return min(n - 1, step * n // int(self.total_steps))  # type: ignore[arg-type]

    @property
    def net(self) -> MLRSNet:
        """The net that reads the next loss."""
        return self.nets[self.net_index(self.last_epoch)]

    def step(self, loss: torch.Tensor | float) -> None:  # type: ignore[override]
        """Feed this step's loss to the net and set the LR of the next ``optimizer.step()``."""
        k = self.net_index(self.last_epoch)
        with torch.no_grad():
            lr, state = self.nets[k](self._net_input(loss), self.lstm_state)
        self.lstm_state = (state[0].detach(), state[1].detach())
        self._set_lrs(lr, self.factors[k])
        self.last_epoch += 1
        self._step_count += 1

    def state_dict(self) -> dict[str, Any]:
        """Step count, LSTM state and LRs; the nets themselves come from the checkpoint(s) again."""
        return {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "lstm_state": None if self.lstm_state is None else tuple(t.clone() for t in self.lstm_state),
            "base_lrs": list(self.base_lrs),
            "_last_lr": list(self._last_lr),
            "num_nets": len(self.nets),
            "hidden_size": self.nets[0].hidden_size,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`, including the LSTM state, and the LRs of the next step."""
        saved = (state_dict["num_nets"], state_dict["hidden_size"])
        if saved != (len(self.nets), self.nets[0].hidden_size):
            raise ValueError(
                f"scheduler state for {saved[0]} net(s) of hidden size {saved[1]} cannot be loaded into "
                f"{len(self.nets)} net(s) of hidden size {self.nets[0].hidden_size}; rebuild the scheduler "
                "from the same checkpoint(s)"
            )
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])
        lstm = state_dict["lstm_state"]
        self.lstm_state = None if lstm is None else (lstm[0].to(self.device), lstm[1].to(self.device))
        self.base_lrs = list(state_dict["base_lrs"])
        for group, value in zip(self.optimizer.param_groups, state_dict["_last_lr"], strict=True):
            group["lr"] = value.to(self.device) if isinstance(value, torch.Tensor) else value
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]
