"""Tasks: data + model + loss + metric, the inner problem an LR schedule is judged on.

A task is the only thing the training loop (:mod:`mlrsnet.engine.loop`) and the meta engine
(:mod:`mlrsnet.meta`) know about a problem. Its small interface, after learned_optimization's Task:

- ``build_model()``: a freshly initialised model;
- ``train_batches(epoch)``: the epoch's training batches, in a seeded order;
- ``meta_batch()``: a batch from the meta-validation split (disjoint from training);
- ``meta_loss(forward, batch)``: the meta loss of a meta batch (``loss``; a language model whose meta windows
  are sequential also carries the meta LSTM state it ends in to the next one);
- ``loss(forward, batch)``: a *pure* mean loss, where ``forward`` may be the model, a
  ``torch.func.functional_call`` closure or a ``higher`` functional model;
- ``train_loss(model, batch)``: the loss of a real training step (language models carry their hidden
  state across steps here);
- ``evaluate(model, split)``: metrics on ``"test"``, ``"meta"`` or ``"train"``;
- ``after_step(model)``: runs after every optimiser step of the loop (a constrained task projects its
  parameters here, e.g. NMF onto W, H >= 0); nothing by default;
- ``stability_bound(model)``: the largest stable LR for the last training batch where the task knows one
  (:mod:`mlrsnet.tasks.nmf`), else None.

All data lives on ``device`` as tensors and batches are drawn by indexing, not by a DataLoader.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlrsnet.errors import ConfigError
from mlrsnet.tasks.models import build_model
from mlrsnet.typed import setting

Forward = Callable[..., Any]
NOISE_KINDS = ("none", "sym", "pair", "unif", "flip")
META_WINDOWS = ("random", "sequential")
META_WINDOWS_HELP = ("meta batches of a language model: random (meta_batch_size windows at random places of the meta "
                     "stream, each from a zero state) | sequential (the meta stream in meta_batch_size rows, one BPTT "
                     "slice per meta update in order, the meta LSTM state carried: the reference's "
                     "language-modeling meta_train.py)")


@dataclass(kw_only=True)
class TaskConfig:
    """The ``task`` section every task has. Each dataset builder declares the subclass it reads
    (:func:`mlrsnet.tasks.registry.register_dataset`): its family's own keys and defaults."""

    name: str = setting(help="the task's name (conf/task/NAME.yaml)")
    dataset: str = setting(help="the dataset builder (mlrsnet.tasks.registry)")
    model: str = setting(help="the model (mlrsnet.tasks.models)")
    model_kwargs: dict[str, Any] = setting({}, "keyword arguments of the model")
    batch_size: int = setting(help="training batch size (the run's batch_size)", ge=1)
    meta_batch_size: int = setting(help="meta-validation batch size (the run's meta.batch_size)", ge=1)
    split_seed: int = setting(0, "seed of the fixed train / meta / test split")


@dataclass
class NoiseConfig:
    """Label noise on the training split (the meta and test splits stay clean)."""

    kind: str = setting("none", "none | sym | pair | unif | flip (unif, flip: the reference code's)",
                        choices=NOISE_KINDS)
    rate: float = setting(0.0, "fraction of corrupted training labels", ge=0.0, lt=1.0, example="0.4 (for example)")

    def check(self, prefix: str) -> None:
        if self.rate > 0 and self.kind == "none":
            raise ConfigError(f"{prefix}rate={self.rate} has no effect with {prefix}kind=none; add "
                              f"{prefix}kind=sym (or pair) to corrupt the labels, or drop {prefix}rate")


@dataclass(kw_only=True)
class ClassificationConfig(TaskConfig):
    """A classification task: a class-balanced meta set carved from the training split, a training subset,
    label noise."""

    meta_size: int = setting(100, "class-balanced meta-validation set carved from the training split", ge=1)
    train_fraction: float = setting(1.0, "use this fraction of the (post-meta-split) training set", gt=0.0, le=1.0,
                                    example="1.0")
    noise: NoiseConfig = setting(NoiseConfig(), "label noise on the training split")


@dataclass
class TaskInfo:
    """What the schedule machinery needs to know about a task."""

    name: str
    num_classes: int  # C in gamma; the vocabulary size for language models
    loss_scale: float = 1.0  # MLR-SNet input = loss / loss_scale (ln(vocab) for language models)
    metric: str = "accuracy"
    higher_is_better: bool = True

    @property
    def chance(self) -> float | None:
        """The metric of a model that learned nothing: accuracy 1/C of uniform guessing, perplexity C (the
        vocabulary) of a uniform prediction, relative error 1 of a zero reconstruction; None for another metric.
        A run that ends worse than this has failed (:func:`mlrsnet.engine.stats.compare`)."""
        return {"accuracy": 1.0 / self.num_classes, "perplexity": float(self.num_classes),
                "rel_error": 1.0}.get(self.metric)


class Task:
    """Base class; see the module docstring for the protocol."""

    info: TaskInfo
    device: torch.device
    generator: torch.Generator
    meta_generator: torch.Generator
    autocast_dtype: torch.dtype | None = None  # set by the entry point: bf16 with ``amp=true`` on CUDA

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context for every forward pass of the task (training, meta and evaluation), so that mixed
        precision is one switch; losses are computed in float32 outside it."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def train_batches(self, epoch: int) -> Iterator[tuple]:
        raise NotImplementedError

    @property
    def steps_per_epoch(self) -> int:
        raise NotImplementedError

    def meta_batch(self) -> tuple:
        raise NotImplementedError

    def random_train_batch(self) -> tuple:
        """An extra training batch for K > 1 unrolls (drawn from the meta engine's generator so that
        it does not shift the data order of the real training run)."""
        raise NotImplementedError

    def loss(self, forward: Forward, batch: tuple) -> torch.Tensor:
        raise NotImplementedError

    def train_loss(self, model: nn.Module, batch: tuple) -> torch.Tensor:
        return self.loss(model, batch)

    def meta_loss(self, forward: Forward, batch: tuple) -> torch.Tensor:
        """The meta loss of a meta batch (:meth:`meta_batch`) at the weights ``forward`` runs with."""
        return self.loss(forward, batch)

    def evaluate(self, model: nn.Module, split: str = "test") -> dict[str, float]:
        raise NotImplementedError

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimiser step of the loop (projection onto a constraint set)."""

    def stability_bound(self, model: nn.Module) -> float | None:
        """The largest LR for which a step on the last training batch is known to be stable; None: unknown."""
        return None

    def predict_proba(self, model: nn.Module, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example predicted class probabilities ``[N, C]`` (float32, CPU) and labels ``[N]`` of a split;
        classification tasks only (what an ensemble of the task's models combines)."""
        raise ConfigError(f"task {self.info.name} does not predict per-example class probabilities; ensembles "
                          "need a classification task (e.g. +task=digits_cnn)")

    # Resume support: everything that determines the data order from here on.
    def rng_state(self) -> dict:
        return {"generator": self.generator.get_state(), "meta_generator": self.meta_generator.get_state()}

    def set_rng_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.meta_generator.set_state(state["meta_generator"])


@dataclass
class ClassificationData:
    """Training / meta / test tensors of a classification task, already on the task's device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    meta_x: torch.Tensor
    meta_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    clean_train_y: torch.Tensor | None = None  # the labels before noise, for diagnostics only
    extras: dict = field(default_factory=dict)


class ClassificationTask(Task):
    """Image / tabular classification with in-memory tensors.

    ``transform_train(x, generator)`` turns a stored batch into model input (e.g. batched on-device
    augmentation of uint8 images); ``transform_eval(x)`` does the same without randomness. Meta batches get
    ``transform_eval`` (the meta set is a validation set), or with ``meta_augment`` the training transform, as
    the reference's meta loader (its meta images carry the training transform).
    """

    def __init__(
        self,
        info: TaskInfo,
        data: ClassificationData,
        model: str,
        model_kwargs: dict,
        batch_size: int,
        meta_batch_size: int,
        seed: int,
        transform_train: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        transform_eval: Callable[[torch.Tensor], torch.Tensor] | None = None,
        eval_batch_size: int = 1024,
        meta_augment: bool = False,
    ) -> None:
        self.info = info
        self.data = data
        self.model_name = model
        self.model_kwargs = dict(model_kwargs)
        self.batch_size = int(batch_size)
        self.meta_batch_size = int(meta_batch_size)
        self.eval_batch_size = eval_batch_size
        self.device = data.train_x.device
        self.transform_train = transform_train
        self.transform_eval = transform_eval
        self.meta_augment = bool(meta_augment)
        self.generator = torch.Generator().manual_seed(seed)
        self.meta_generator = torch.Generator().manual_seed(seed + 7919)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.data.train_x.shape[1:])

    def build_model(self) -> nn.Module:
        return build_model(
            self.model_name, in_shape=self.in_shape, num_classes=self.info.num_classes, **self.model_kwargs
        ).to(self.device)

    @property
    def steps_per_epoch(self) -> int:
        n = self.data.train_y.numel()
        return max(1, n // self.batch_size)  # drop_last: BatchNorm dislikes tiny final batches

    def _train_view(self, idx: torch.Tensor, generator: torch.Generator) -> tuple:
        # non_blocking: a plain host-to-device copy synchronises the device every step
        idx = idx.to(self.device, non_blocking=True)
        x = self.data.train_x[idx]
        x = self.transform_train(x, generator) if self.transform_train else x
        return x, self.data.train_y[idx]

    def train_batches(self, epoch: int) -> Iterator[tuple]:
        n = self.data.train_y.numel()
        perm = torch.randperm(n, generator=self.generator)
        bs = min(self.batch_size, n)
        for s in range(self.steps_per_epoch):
            yield self._train_view(perm[s * bs:(s + 1) * bs], self.generator)

    def random_train_batch(self) -> tuple:
        n = self.data.train_y.numel()
        idx = torch.randint(0, n, (min(self.batch_size, n),), generator=self.meta_generator)
        return self._train_view(idx, self.meta_generator)

    def meta_batch(self) -> tuple:
        n = self.data.meta_y.numel()
        if self.meta_batch_size >= n:
            idx = torch.arange(n)
        else:
            idx = torch.randperm(n, generator=self.meta_generator)[: self.meta_batch_size]
        idx = idx.to(self.device, non_blocking=True)
        x = self.data.meta_x[idx]
        if self.meta_augment and self.transform_train:
            x = self.transform_train(x, self.meta_generator)
        elif self.transform_eval:
            x = self.transform_eval(x)
        return x, self.data.meta_y[idx]

    def loss(self, forward: Forward, batch: tuple) -> torch.Tensor:
        x, y = batch
        with self.autocast():
            logits = forward(x)
        return F.cross_entropy(_full_precision(logits), y)

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return {
            "test": (self.data.test_x, self.data.test_y),
            "meta": (self.data.meta_x, self.data.meta_y),
            "train": (self.data.train_x, self.data.train_y),
        }[split]

    @torch.no_grad()
    def predict_proba(self, model: nn.Module, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
        """Softmax probabilities ``[N, C]`` (float32, CPU; eval mode) and labels ``[N]`` of a split."""
        x, y = self._split(split)
        was_training = model.training
        model.eval()
        out = []
        for s in range(0, y.numel(), self.eval_batch_size):
            xb = x[s:s + self.eval_batch_size]
            xb = self.transform_eval(xb) if self.transform_eval else xb
            with self.autocast():
                out.append(_full_precision(model(xb)).float().softmax(1).cpu())
        model.train(was_training)
        return torch.cat(out), y.cpu()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str = "test", augment: torch.Generator | None = None
                 ) -> dict[str, float]:
        """Metrics of ``split`` in eval mode; ``augment``: the inputs get the training transform, drawn from
        that generator (the reference measures L0 so, on its augmented training loader)."""
        x, y = self._split(split)
        was_training = model.training
        model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        conf_sum = torch.zeros((), device=self.device)
        conf_sq_sum = torch.zeros((), device=self.device)
        for s in range(0, y.numel(), self.eval_batch_size):
            xb = x[s:s + self.eval_batch_size]
            if augment is not None and self.transform_train:
                xb = self.transform_train(xb, augment)
            elif self.transform_eval:
                xb = self.transform_eval(xb)
            with self.autocast():
                logits = _full_precision(model(xb))
            yb = y[s:s + self.eval_batch_size]
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            pred = logits.argmax(1)
            hit = pred == yb
            correct += hit.sum()
            conf = logits.softmax(1).max(1).values * hit
            conf_sum += conf.sum()
            conf_sq_sum += (conf * conf).sum()
        model.train(was_training)
        n = y.numel()
        n_correct = int(correct)
        conf_mean = float(conf_sum) / max(1, n_correct)
        conf_var = float(conf_sq_sum) / max(1, n_correct) - conf_mean**2
        return {
            "loss": float(loss_sum) / n,
            "accuracy": n_correct / n,
            "confidence_correct": conf_mean,  # mean and std of the softmax confidence on correct predictions
            "confidence_correct_std": math.sqrt(max(0.0, conf_var)),
        }


def batchify(stream: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Reshape a 1-D token stream into ``batch_size`` contiguous rows (trailing tokens dropped)."""
    n = stream.numel() // batch_size
    return stream[: n * batch_size].view(batch_size, n)


class LanguageModelTask(Task):
    """Next-token prediction on token streams, in contiguous BPTT slices with the LSTM state carried
    (detached) across slices within an epoch, as in the classic PTB setup.

    Batches are ``(x, y, hidden)``; ``hidden`` is the carried state at the time the batch is drawn,
    so :meth:`loss` is pure and the meta engine can re-evaluate a training batch.

    Meta batches (``meta_windows``): ``random``, ``meta_batch_size`` windows of ``bptt`` tokens at random
    places of the meta stream, each from a zero state; ``sequential``, as the reference's language-modeling
    meta_train.py: the meta stream in ``meta_batch_size`` contiguous rows, read one BPTT slice per meta update
    in order, the meta LSTM state carried (detached) from one meta update's slice to the next (it is the state
    the looked-ahead model ends the slice in), back to the first slice and a zero state after the last.
    """

    def __init__(
        self,
        info: TaskInfo,
        train: torch.Tensor,
        meta: torch.Tensor,
        test: torch.Tensor,
        model: str,
        model_kwargs: dict,
        batch_size: int,
        bptt: int,
        meta_batch_size: int,
        seed: int,
        eval_batch_size: int = 10,
        meta_windows: str = "random",
    ) -> None:
        if meta_windows not in META_WINDOWS:
            raise ValueError(f"meta_windows must be one of {', '.join(META_WINDOWS)}, got {meta_windows!r}")
        self.info = info
        self.device = train.device
        self.model_name = model
        self.model_kwargs = dict(model_kwargs)
        self.batch_size = int(batch_size)
        self.bptt = int(bptt)
        self.meta_batch_size = int(meta_batch_size)
        self.eval_batch_size = eval_batch_size
        self.streams = {"train": train, "meta": meta, "test": test}
        self.train_rows = batchify(train, self.batch_size)
        self.meta_windows = meta_windows
        self.meta_rows = batchify(meta, self.meta_batch_size) if meta_windows == "sequential" else None
        self.generator = torch.Generator().manual_seed(seed)
        self.meta_generator = torch.Generator().manual_seed(seed + 7919)
        self._carry: Any = None
        self._meta_slice = 0  # sequential meta windows: the next slice, and the state the previous one ended in
        self._meta_carry: Any = None

    def build_model(self) -> nn.Module:
        return build_model(self.model_name, vocab_size=self.info.num_classes, **self.model_kwargs).to(self.device)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, (self.train_rows.shape[1] - 1) // self.bptt)

    def train_batches(self, epoch: int) -> Iterator[tuple]:
        self._carry = None
        for s in range(self.steps_per_epoch):
            i = s * self.bptt
            x = self.train_rows[:, i:i + self.bptt]
            y = self.train_rows[:, i + 1:i + 1 + self.bptt]
            yield x, y, self._carry

    def _windows(self, stream: torch.Tensor, count: int, generator: torch.Generator) -> tuple:
        starts = torch.randint(0, stream.numel() - self.bptt - 1, (count,), generator=generator)
        offs = torch.arange(self.bptt + 1)
        win = stream[(starts[:, None] + offs[None, :]).to(stream.device, non_blocking=True)]
        return win[:, :-1], win[:, 1:], None

    def random_train_batch(self) -> tuple:
        return self._windows(self.streams["train"], self.batch_size, self.meta_generator)

    def rng_state(self) -> dict:
        # The LSTM states carried across BPTT slices (training, and sequential meta windows) and the next meta
        # slice are part of where an interrupted run stands.
        return {**super().rng_state(), "carry": self._carry, "meta_slice": self._meta_slice,
                "meta_carry": self._meta_carry}

    def set_rng_state(self, state: dict) -> None:
        super().set_rng_state(state)
        self._carry = self._to_device(state.get("carry"))
        self._meta_slice = int(state.get("meta_slice", 0))
        self._meta_carry = self._to_device(state.get("meta_carry"))

    def _to_device(self, hidden: Any) -> Any:
        return None if hidden is None else type(hidden)(h.to(self.device) for h in hidden)

    def meta_batch(self) -> tuple:
        if self.meta_rows is None:
            return self._windows(self.streams["meta"], self.meta_batch_size, self.meta_generator)
        slices = max(1, (self.meta_rows.shape[1] - 1) // self.bptt)
        if self._meta_slice >= slices:
            self._meta_slice, self._meta_carry = 0, None
        i = self._meta_slice * self.bptt
        self._meta_slice += 1
        hidden = None if i == 0 else self._meta_carry
        return self.meta_rows[:, i:i + self.bptt], self.meta_rows[:, i + 1:i + 1 + self.bptt], hidden

    def meta_loss(self, forward: Forward, batch: tuple) -> torch.Tensor:
        loss, hidden = self._logits_loss(forward, batch)
        if self.meta_rows is not None:
            self._meta_carry = _detach(hidden)
        return loss

    def _logits_loss(self, forward: Forward, batch: tuple) -> tuple[torch.Tensor, Any]:
        x, y, hidden = batch
        with self.autocast():
            logits, new_hidden = forward(x, hidden)
        return F.cross_entropy(_full_precision(logits.reshape(-1, logits.shape[-1])), y.reshape(-1)), new_hidden

    def loss(self, forward: Forward, batch: tuple) -> torch.Tensor:
        return self._logits_loss(forward, batch)[0]

    def train_loss(self, model: nn.Module, batch: tuple) -> torch.Tensor:
        loss, hidden = self._logits_loss(model, batch)
        self._carry = _detach(hidden)
        return loss

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str = "test") -> dict[str, float]:
        rows = batchify(self.streams[split], self.eval_batch_size)
        was_training = model.training
        model.eval()
        hidden = None
        total = torch.zeros((), device=self.device)
        count = 0
        for i in range(0, rows.shape[1] - 1, self.bptt):
            x = rows[:, i:i + self.bptt]
            y = rows[:, i + 1:i + 1 + self.bptt]
            x = x[:, : y.shape[1]]
            with self.autocast():
                logits, hidden = model(x, hidden)
            flat = _full_precision(logits.reshape(-1, logits.shape[-1]))
            total += F.cross_entropy(flat, y.reshape(-1), reduction="sum")
            count += y.numel()
        model.train(was_training)
        loss = float(total) / max(1, count)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}


def _detach(hidden: Any) -> Any:
    if hidden is None:
        return None
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return type(hidden)(_detach(h) for h in hidden)


def _full_precision(logits: torch.Tensor) -> torch.Tensor:
    """Losses are computed in float32 under bf16/fp16 autocast; float64 stays float64."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
