"""A frozen, meta-learned MLR-SNet as a ``torch.optim.lr_scheduler`` scheduler: plug-and-play transfer.

Two lines in any training loop (``T``: the number of ``optimizer.step()`` calls of the run)::

    sched = MLRSNetScheduler(optimizer, total_steps=T)   # the shipped default bundle
    ...
    loss.backward(); optimizer.step(); sched.step(loss)

**The default respects the optimizer's LR** (``scale="optimizer"``): the run starts at each group's LR, as
with torch's own schedulers, and later LRs are that LR times the net's output relative to its first output,
``lr_{g,t} = lr_g * s_t / s_0`` (``s_t`` below; with the shipped bundle about ``lr_g`` for the first third of the
run, then 6 to 170 times lower in the runs measured; never above ``lr_g / s_0``, about twice ``lr_g``).
**The paper's protocol is one argument away**: ``scale="recompute"`` (pass ``num_classes=``, ``train_loss=``,
and for a language model ``loss_scale=``, ``gamma_from="perplexity"``); mlrsnet's own ``schedule=mlrsnet_frozen`` and
``python -m mlrsnet.transfer`` use it. Measured in a plain loop (experiments/scheduler_defaults/README.md, SGD,
5 seeds, test metric): the old default, ``"recompute"`` from the mini-batch losses, put breast cancer (2
classes: gamma 0.064) at 93.3% against 96.1% for a constant LR 0.1 and 95.7% for ``"optimizer"``; on the
CPython character LM at perplexity 23.2 against 20.8 (``"optimizer"``), 14.7 (constant 1.0) and 14.0 (the full
paper protocol, whose gamma is an LR above the user's); on digits 97.2% against 95.0% (``"optimizer"``) and
97.2% (constant). ``scale=None`` (the optimizer's LR as the ceiling, a first LR of about half of it) lost to
``"optimizer"`` on all four tasks. At these short budgets no drop-in variant beat a constant LR or cosine
significantly on the classification tasks.

The paper's protocol follows the reference meta-test (``meta-test/meta_test.py`` of
github.com/xjtushujun/MLR-SNet):

- **a bundle of nets** (the nets of one meta-training run after epochs 1, N/2 and N; a shipped bundle by
  its short name, a file, or a list of nets): with ``n`` nets and ``T`` steps, net ``k`` reads the losses
  of steps ``[k T / n, (k + 1) T / n)``; the LSTM state carries across the swaps;
- **gamma recomputed** (``scale="recompute"``) at the start and at each swap::

      gamma_k = |sqrt(L_k) ln(L_k C) / (4 C^0.25)|        (:func:`mlrsnet.net.recomputed_gamma`)

  with ``C`` the class count (vocabulary size for a language model) and ``L_k`` the mean training loss at
  that moment (``gamma_from="perplexity"``: its perplexity ``exp(L_k)``, the convention of the reference's
  language-modeling code, which :mod:`mlrsnet.transfer` applies to language models). The reference
  measures ``L_k`` over the whole training set in eval mode; pass ``train_loss=<callable returning that
  mean>`` to do the same (:mod:`mlrsnet.transfer` does). In your
  own loop without it, the scheduler cannot see the whole split, so ``L_k`` is **the mean of the
  mini-batch losses passed to** :meth:`step` **since the previous swap**, and ``L_0`` is ``initial_loss``
  if given, else the first loss passed to :meth:`step` (the first step then runs at the optimizer's own
  LR). ``num_classes=None`` estimates ``C = exp(L_0)`` (a fresh classifier's loss is about ln C);
- the LR of a step is ``lr_{g,t} = gamma_k * s_t * r_g``, with ``s_t = MLRSNet_k(loss_t / loss_scale) /
  gamma_stored_k`` in (0, 1) the net's normalised output and ``r_g`` param group g's initial LR relative to
  group 0's.

Other scales: ``scale="optimizer"`` (the default, above: ``r_g gamma_k / gamma_stored_k`` replaced by
``lr_g / s_0``), ``scale="checkpoint"`` (each net's stored gamma), ``scale=<float>`` (a fixed gamma), or
``scale=None`` / ``"ceiling"`` (each group's initial LR is the largest LR the net can emit: ``lr_g * s_t``).
``lr_factor`` multiplies every LR (what a benchmark tunes). A single net works as one
window. ``loss_scale`` is the task's loss normaliser: 1 for classification, ``ln(vocabulary size)`` for
language models, as in the paper.

Inside ``torch.optim.lr_scheduler.SequentialLR`` (e.g. after a ``LinearLR`` warm-up), pass
``total_steps`` = the steps it schedules, and call ``sched.observe(loss)`` before ``seq.step()`` at
every step: ``SequentialLR`` calls its schedulers without arguments. ``ChainedScheduler`` multiplies the
factors of its schedulers into the LR, while MLR-SNet sets the LR itself from the loss, so the two cannot
compose: it raises a one-line :class:`~mlrsnet.errors.SchedulerCompositionError`.

The LR stays a device tensor where the optimizer reads it on the device (``fused=True``, or Adam /
AdamW with ``capturable=True``), so on CUDA a step never waits for the host, except at a swap in the
window-mean mode and once at the first step under ``scale="optimizer"`` (``s_0`` is read); other optimizers
get a Python float (:func:`mlrsnet.schedules.base.set_lr`).

:class:`mlrsnet.schedules.drivers.FrozenMLRSNetDriver` runs the same scheduler inside
:func:`mlrsnet.engine.loop.train_loop` with the paper's timing (the LR of step t from the loss of step t);
:mod:`mlrsnet.transfer` uses it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ChainedScheduler, LRScheduler

from mlrsnet.checkpoint import DEFAULT_CHECKPOINT, load_nets, resolve_checkpoint
from mlrsnet.errors import AdaptiveScaleWarning, CheckpointError, DivergenceError, SchedulerCompositionError
from mlrsnet.net import MLRSNet, State, gamma_statistic, recomputed_gamma
from mlrsnet.schedules.base import set_lr

__all__ = ["DEFAULT_CHECKPOINT", "MLRSNetScheduler", "load_frozen", "resolve_checkpoint", "warn_adaptive_gamma",
           "without_scale_warning"]

CheckpointLike = str | os.PathLike | MLRSNet
SCALE_MODES = ("optimizer", "recompute", "checkpoint", "ceiling")


def _freeze(net: MLRSNet, label: str, device: torch.device | str) -> MLRSNet:
    net.reset_state()
    if not float(net.gamma) > 0:
        raise CheckpointError(f"{label} has gamma {float(net.gamma)}; gamma must be positive")
    return net.to(device).requires_grad_(False).eval()


def load_frozen(checkpoint: CheckpointLike | Sequence[CheckpointLike] | None,
                device: torch.device | str = "cpu", reading: str = "auto") -> list[MLRSNet]:
    """Frozen copies of the nets a ``checkpoint`` argument names, in swap order: ``None`` (the shipped
    default bundle), a shipped short name, a path (one net, a bundle or an authors' ``.pth``), an
    :class:`MLRSNet` (copied, never modified), or a list of these. No gradients, eval mode, on ``device``.
    ``reading``: how the authors' nets are read (:func:`mlrsnet.checkpoint.load_nets`; ``auto``: as their
    meta-test code reads them)."""
    items = list(checkpoint) if isinstance(checkpoint, list | tuple) else [checkpoint]
    if not items:
        raise CheckpointError("checkpoint=[] names no net; give a short name, a path or a list of them")
    nets: list[MLRSNet] = []
    for item in items:
        if isinstance(item, MLRSNet):
            nets.append(_freeze(copy.deepcopy(item), "the MLRSNet passed in", device))
            continue
        path = resolve_checkpoint(item)
        nets += [_freeze(n, f"checkpoint {path}", device) for n in load_nets(path, "cpu", reading)[0]]
    # The state carries over between nets of one shape; their cells (forget shift, gate order) may differ.
    configs = {(net.config.hidden_size, net.config.input_size, net.config.mlp_width) for net in nets}
    if len(configs) > 1:
        raise CheckpointError(
            f"checkpoints {items} hold different MLR-SNet architectures; the LSTM state can only carry over "
            "between nets of one architecture"
        )
    return nets


# Optimizers whose LR is a per-parameter step size of about 1e-3, not an SGD LR (the recomputed gamma warns).
ADAPTIVE_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam, torch.optim.RAdam, torch.optim.Adamax,
                       torch.optim.Adagrad, torch.optim.RMSprop)


def warn_adaptive_gamma(optimizer: Optimizer, gamma: float, key: str) -> None:
    """Warn (one line on stderr) when the paper's gamma, an SGD-scale LR ceiling, drives Adam or AdamW.

    gamma = sqrt(L0) ln(L0 C) / (4 C^0.25) was derived for SGD: about 0.67 on digits, so MLR-SNet's first
    LR (about gamma / 2) is two orders of magnitude above Adam's usual 1e-3, and Adam does not learn. The
    gamma is left as the formula gives it (a silent rescale would change what the formula means); the
    warning names the config key that fixes it."""
    if isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        name = type(optimizer).__name__.lower()
        fix = (f"set {key}=optimizer (twice optimizer.lr) or about twice the LR you want" if key == "net.gamma"
               else f"set {key} to about twice the LR you want")
        print(f"warning: optimizer.name={name} with the SGD-scale gamma {gamma:.3g} of the paper's formula: "
              f"the first LR is about {gamma / 2:.2g}, far above the ~1e-3 {name} trains with; {fix} (e.g. "
              f"{key}=0.002)", file=sys.stderr, flush=True)


@contextlib.contextmanager
def without_scale_warning() -> Iterator[None]:
    """Silence :class:`~mlrsnet.errors.AdaptiveScaleWarning` for a caller that has warned in its own words
    (the command lines name their config key)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AdaptiveScaleWarning)
        yield


class MLRSNetScheduler(LRScheduler):
    """A frozen MLR-SNet bundle (or one net) as a torch LR scheduler; see the module docstring.

    Args:
        optimizer: any torch optimizer, any number of param groups.
        checkpoint: ``None`` (the shipped default bundle), a shipped short name, a path (one net, a bundle,
            an authors' ``.pth``), an :class:`~mlrsnet.net.MLRSNet`, or a list of these (swap order).
        total_steps: the number of steps this scheduler runs; required with more than one net.
        scale: ``"optimizer"`` (default: each group's LR is the first LR, then scaled by the net's output
            relative to its first), ``"recompute"`` (the paper's meta-test protocol), ``"checkpoint"``, a positive
            float (a fixed gamma), or ``None`` / ``"ceiling"`` (each group's LR is the largest the net emits).
        num_classes: C of the gamma formula (``scale="recompute"``; vocabulary size for LMs); ``None``: ``exp(L_0)``.
        loss_scale: the loss is divided by this before it enters the net (``ln(vocab)`` for LMs).
        initial_loss: L_0, the loss of the fresh model; the first step's LR is then the net's output for it
            (the state is not advanced; under ``scale="optimizer"`` it defines ``s_0``).
        train_loss: a callable returning the mean training loss over the whole training split (eval mode),
            called at the start (when ``initial_loss`` is not given) and at each swap; ``None``: the mean of
            the losses passed to :meth:`step` since the previous swap.
        gamma_min: floor of a recomputed gamma (0: the reference's ``abs(...)`` unfloored).
        gamma_from: ``"loss"`` (default): L_k enters the formula as it is; ``"perplexity"``: ``exp(L_k)``
            does, as the reference's language-modeling code computes gamma (pass it for a language model).
        lr_factor: multiplies every LR.
        reading: how the authors' nets are read: ``"auto"`` (their meta-test cell, as their meta-test code
            loads them), ``"meta_test"`` or ``"meta_train"`` (:mod:`mlrsnet.checkpoint`); nets meta-trained here
            always load as they were trained.
        check_finite: a non-finite loss given to :meth:`step` is a :class:`~mlrsnet.errors.DivergenceError` (Python
            numbers and CPU tensors; a loss on an accelerator is not read on the host). mlrsnet's own loop turns
            it off: its divergence guard handles a non-finite loss (stop, or roll back).

    Under Adam, AdamW and the other adaptive optimizers (``ADAPTIVE_OPTIMIZERS``) the recomputed gamma, an
    SGD-scale LR, is an :class:`~mlrsnet.errors.AdaptiveScaleWarning` when it is first computed: keep the default
    ``scale="optimizer"`` there, or pass ``None`` or a number.

    Call :meth:`step` with the loss after every ``optimizer.step()``. :meth:`get_last_lr` returns the
    groups' current LRs (device tensors where the optimizer reads them on the device).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        checkpoint: CheckpointLike | Sequence[CheckpointLike] | None = None,
        *,
        total_steps: int | None = None,
        scale: float | str | None = "optimizer",
        num_classes: int | None = None,
        loss_scale: float = 1.0,
        initial_loss: float | torch.Tensor | None = None,
        train_loss: Callable[[], float] | None = None,
        gamma_min: float = 0.0,
        lr_factor: float = 1.0,
        gamma_from: str = "loss",
        check_finite: bool = True,
        reading: str = "auto",
    ) -> None:
        if not loss_scale > 0:
            raise ValueError(f"loss_scale must be positive, got {loss_scale}")
        if not lr_factor > 0:
            raise ValueError(f"lr_factor must be positive, got {lr_factor}")
        if gamma_from not in ("loss", "perplexity"):
            raise ValueError(f"gamma_from must be 'loss' or 'perplexity', got {gamma_from!r}")
        if num_classes is not None and int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        params = [p for g in optimizer.param_groups for p in g["params"]]
        self.device = params[0].device if params else torch.device("cpu")
        self.nets = load_frozen(checkpoint, self.device, reading)
        if len(self.nets) > 1 and (total_steps is None or int(total_steps) < len(self.nets)):
            raise ValueError(
                f"a bundle of {len(self.nets)} nets is swapped at equal fractions of the run: pass "
                f"total_steps >= {len(self.nets)}, the number of optimizer steps (got {total_steps})"
            )
        if scale == "ceiling":
            scale = None
        numeric = isinstance(scale, int | float) and not isinstance(scale, bool)
        if not (scale is None or scale in ("optimizer", "recompute", "checkpoint") or (numeric and scale > 0)):  # type: ignore[operator]
            raise ValueError("scale must be 'optimizer', 'recompute', 'checkpoint', 'ceiling' (or None), or a positive "
                             f"number, got {scale!r}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", float(group["lr"]))
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.scale = scale
        self.loss_scale = float(loss_scale)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.train_loss = train_loss
        self.gamma_min = float(gamma_min)
        self.gamma_from = gamma_from
        self.lr_factor = float(lr_factor)
        self.check_finite = bool(check_finite)
        self.stored_gammas = [float(net.gamma) for net in self.nets]  # host copies, read once
        n = len(self.nets)
        if scale == "checkpoint":
            self.gammas: list[float | None] = list(self.stored_gammas)
        elif numeric:
            self.gammas = [float(scale)] * n  # type: ignore[arg-type]
        else:
            self.gammas = [None] * n  # recompute: filled at the start and at each swap
        self.swap_losses: list[float | None] = [None] * n  # L_k of each window (recompute)
        self.first_fraction: float | None = None  # s_0, the net's first normalised output (scale="optimizer")
        self.lstm_state: State | None = None
        self._window_sum: torch.Tensor | float = 0.0
        self._window_count = 0
        self._observed: torch.Tensor | float | None = None
        self.last_epoch = 0
        self._step_count = 0
        l0 = initial_loss
        if l0 is None and scale == "recompute" and train_loss is not None:
            l0 = float(train_loss())
        if scale == "recompute" and l0 is not None:
            self._recompute(0, float(l0))
        if l0 is not None:
            with torch.no_grad():
                lr, _ = self.nets[0](self._net_input(l0), None)
            if scale == "optimizer":
                self.first_fraction = self._fraction(lr, 0)
            self._set_lrs(lr, 0)
        elif scale == "optimizer":
            set_lr(optimizer, 1.0, [self.lr_factor * b for b in self.base_lrs])  # the optimizer's own LR
            self._last_lr = [g["lr"] for g in optimizer.param_groups]
        elif scale != "recompute":
            self._set_lrs(self.stored_gammas[0], 0)  # the largest LR the net can emit
        else:
            self._last_lr = [g["lr"] for g in optimizer.param_groups]  # gamma unknown until the first loss

    def _fraction(self, lr: torch.Tensor, k: int) -> float:
        """s_0: the net's output as a fraction of its ceiling (read on the host once, at the first step)."""
        return float(lr) / self.stored_gammas[k]

    def _recompute(self, k: int, loss: float) -> None:
        if self.num_classes is None:
            self.num_classes = max(2, round(math.exp(min(loss, 50.0))))
        self.swap_losses[k] = loss
        self.gammas[k] = recomputed_gamma(gamma_statistic(loss, self.gamma_from), self.num_classes, self.gamma_min)
        if k == 0 and isinstance(self.optimizer, ADAPTIVE_OPTIMIZERS):
            name = type(self.optimizer).__name__
            level, frame = 1, sys._getframe(0)
            while frame.f_back is not None and frame.f_code.co_filename == __file__:
                frame, level = frame.f_back, level + 1
            gamma = self.lr_factor * self.gammas[0]
            warnings.warn(
                f"MLRSNetScheduler(scale='recompute') under {name}: the paper's gamma {gamma:.3g} "
                f"is an SGD-scale LR, far above the ~1e-3 {name} trains with; pass scale='optimizer' (the default: "
                "the optimizer's LR is the first LR), scale=None (it is the largest LR) or scale=<about twice the LR "
                "you want>",
                AdaptiveScaleWarning, stacklevel=level)

    def _factors(self, k: int) -> list[float]:
        """LR of group g = net output * factor_g (the net's output already carries its stored gamma)."""
        if self.scale is None:
            return [self.lr_factor * lr / self.stored_gammas[k] for lr in self.base_lrs]
        if self.scale == "optimizer":
            assert self.first_fraction is not None
            return [self.lr_factor * lr / (self.stored_gammas[k] * self.first_fraction) for lr in self.base_lrs]
        gamma = self.gammas[k]
        assert gamma is not None
        return [self.lr_factor * gamma * lr / (self.base_lrs[0] * self.stored_gammas[k]) for lr in self.base_lrs]

    def _net_input(self, loss: torch.Tensor | float) -> torch.Tensor:
        if isinstance(loss, torch.Tensor):
            x = loss.detach()
            if x.device != self.device:
                x = x.to(self.device)
        else:
            x = torch.tensor(float(loss), device=self.device)
        return x / self.loss_scale

    def _set_lrs(self, lr: torch.Tensor | float, k: int) -> None:
        set_lr(self.optimizer, lr, self._factors(k))
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def net_index(self, step: int) -> int:
        """The net that reads the loss of ``step`` (0-based)."""
        n = len(self.nets)
        if n == 1:
            return 0
        return min(n - 1, max(0, step) * n // int(self.total_steps))  # type: ignore[arg-type]

    @property
    def net(self) -> MLRSNet:
        """The net that reads the next loss."""
        return self.nets[self.net_index(self.last_epoch)]

    def observe(self, loss: torch.Tensor | float) -> None:
        """Record this step's loss for a :meth:`step` called without one (inside ``SequentialLR``)."""
        self._observed = loss

    def _check_finite(self, loss: torch.Tensor | float) -> None:
        """A non-finite loss would set every LR to NaN from here on: a one-line :class:`DivergenceError`. Checked for
        Python numbers and CPU tensors; a loss on an accelerator is not read on the host (that would sync the
        device every step): the training loop's divergence guard checks those once per epoch."""
        if isinstance(loss, torch.Tensor):
            if loss.device.type != "cpu":
                return
            value = float(loss.detach().reshape(-1)[0]) if loss.numel() else math.nan
        else:
            value = float(loss)
        if not math.isfinite(value):
            raise DivergenceError(f"MLRSNetScheduler.step got a non-finite loss ({value}) at step {self.last_epoch}: "
                                  "training has diverged; lower the learning rate (scale=) or stop the run before "
                                  "calling step")

    def _advance(self, loss: torch.Tensor | float) -> None:
        if self.check_finite:
            self._check_finite(loss)
        t = self.last_epoch
        k = self.net_index(t)
        if self.scale == "recompute" and self.gammas[k] is None:
            if k == 0:
                value = float(loss.detach() if isinstance(loss, torch.Tensor) else loss)
            elif self.train_loss is not None:
                value = float(self.train_loss())
            else:
                value = float(self._window_sum) / max(1, self._window_count)
            self._recompute(k, value)
        if k != self.net_index(t - 1) and t > 0:
            self._window_sum, self._window_count = 0.0, 0
        with torch.no_grad():
            lr, state = self.nets[k](self._net_input(loss), self.lstm_state)
        self.lstm_state = (state[0].detach(), state[1].detach())
        if self.scale == "optimizer" and self.first_fraction is None:
            self.first_fraction = self._fraction(lr, k)
        if self.scale == "recompute" and self.train_loss is None:
            x = loss.detach() if isinstance(loss, torch.Tensor) else float(loss)
            self._window_sum = self._window_sum + x
            self._window_count += 1
        self._set_lrs(lr, k)
        self.last_epoch = t + 1
        self._step_count += 1

    def step(self, loss: torch.Tensor | float | None = None) -> None:  # type: ignore[override]
        """Feed this step's loss to the net and set the LR of the next ``optimizer.step()``."""
        if loss is None:
            if getattr(self, "_is_initial", False):
                return  # SequentialLR's initial step of its first scheduler: the LRs are already set
            caller = sys._getframe(1).f_locals.get("self")
            if isinstance(caller, ChainedScheduler):
                raise SchedulerCompositionError(
                    "MLRSNetScheduler cannot run inside ChainedScheduler: ChainedScheduler multiplies each "
                    "scheduler's factor into the LR, MLR-SNet sets the LR itself from the loss; use SequentialLR "
                    "(sched.observe(loss) before seq.step()), or scale the optimizer's LR yourself"
                )
            if self._observed is None:
                raise SchedulerCompositionError(
                    "MLRSNetScheduler.step() needs this step's loss: call sched.step(loss), or inside "
                    "SequentialLR call sched.observe(loss) before seq.step()"
                )
            loss, self._observed = self._observed, None
        self._advance(loss)

    def get_lr(self) -> list[float | torch.Tensor]:  # type: ignore[override]
        """Called by ``SequentialLR`` at the milestone where this scheduler takes over: the LRs from the
        loss given to :meth:`observe`."""
        if self._observed is None:
            raise SchedulerCompositionError(
                "MLRSNetScheduler takes over inside SequentialLR from the loss of the step: call "
                "sched.observe(loss) before seq.step() at every step"
            )
        loss, self._observed = self._observed, None
        self.last_epoch = max(0, self.last_epoch)
        self._advance(loss)
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Step count, LSTM state, gammas and LRs; the nets themselves come from the checkpoint(s) again."""
        window = self._window_sum
        return {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "lstm_state": None if self.lstm_state is None else tuple(t.clone() for t in self.lstm_state),
            "base_lrs": list(self.base_lrs),
            "_last_lr": list(self._last_lr),
            "num_nets": len(self.nets),
            "hidden_size": self.nets[0].hidden_size,
            "gammas": list(self.gammas),
            "swap_losses": list(self.swap_losses),
            "first_fraction": self.first_fraction,
            "num_classes": self.num_classes,
            "window": (window.clone() if isinstance(window, torch.Tensor) else window, self._window_count),
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
        if "gammas" in state_dict:
            self.gammas = list(state_dict["gammas"])
            self.swap_losses = list(state_dict["swap_losses"])
            self.num_classes = state_dict["num_classes"]
            window, self._window_count = state_dict["window"]
            self._window_sum = window.to(self.device) if isinstance(window, torch.Tensor) else window
        if "first_fraction" in state_dict:
            self.first_fraction = state_dict["first_fraction"]
        for group, value in zip(self.optimizer.param_groups, state_dict["_last_lr"], strict=True):
            group["lr"] = value.to(self.device) if isinstance(value, torch.Tensor) else value
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]
