r"""Stochastic non-negative matrix factorisation (NMF): the testbed of the RL-learned LR schedules, with its
per-step stability bound on the learning rate.

The problem: a nonnegative matrix :math:`X \in \mathbb{R}_{\ge 0}^{n \times m}` is approximated by
:math:`W H` with :math:`W \in \mathbb{R}_{\ge 0}^{n \times r}`, :math:`H \in \mathbb{R}_{\ge 0}^{r \times m}`.
Training takes SGD steps on *row mini-batches* :math:`B` of the masked Frobenius loss

.. math::  f_B(W, H) = \frac{1}{2|B|} \sum_{i \in B} \sum_j M_{ij} (w_i h_j - X_{ij})^2

(:math:`w_i` row :math:`i` of :math:`W`, :math:`h_j` column :math:`j` of :math:`H`, :math:`M` the mask of the
training entries), followed by the projection :math:`W, H \leftarrow \max(W, 0), \max(H, 0)`.

Metric: the **relative reconstruction error on held-out entries**,
:math:`\|P \odot (X - WH)\|_F / \|P \odot X\|_F` with :math:`P` the mask of the split's entries. Every entry
of :math:`X` belongs to exactly one of the train / meta / test masks (drawn uniformly at random, fixed by the
instance), so every row has a code :math:`w_i` and the meta and test errors measure how well the factors
predict entries they were never fitted to. The meta split (validation, e.g. the RL reward) and the test split
(reporting only) share no entry.

Where the projection happens: the training loop calls :meth:`Task.after_step` after every optimiser step;
:class:`NMFTask` clamps :math:`W` and :math:`H` at zero there. The meta engine's lookahead and a line search's
trial steps are not projected (they are evaluations, not steps of the run).

Stability bound (:func:`nmf_stability_bound`), from the local Lipschitz constant of the mini-batch
gradient. The blocks' Hessians of :math:`f_B` are

.. math::  \nabla^2_{H} f_B \preceq \tfrac{1}{|B|} (W_B^\top W_B) \otimes I, \qquad
           \nabla^2_{w_i} f_B \preceq \tfrac{1}{|B|} H H^\top,

(equality without a mask), so the blocks are :math:`L_H = \lambda_{\max}(W_B^\top W_B)/|B|`- and
:math:`L_W = \lambda_{\max}(H H^\top)/|B|`-smooth. One LR moves both blocks at once: the Gauss-Newton
part of the joint curvature, :math:`\|J(dW, dH)\|^2 = \|M \odot (dW_B H + W_B dH)\|^2 / |B|
\le 2 (L_W \|dW\|^2 + L_H \|dH\|^2)`, is at most :math:`2 \max(L_W, L_H)`, and the residual
:math:`R_B = M \odot (W_B H - X_B)` adds at most :math:`\|R_B\|_2 / |B|` (the cross term
:math:`2\langle R_B, dW_B\, dH\rangle/|B|`). With :math:`\hat L = 2\max(L_W, L_H) + \|R_B\|_2/|B|` the
descent lemma, which also holds for a projected step onto a convex set,

.. math::  f(\Pi(x - \eta g)) \le f(x) - (1/\eta - \hat L / 2)\, \|\Pi(x - \eta g) - x\|^2,

guarantees that the step does not increase :math:`f_B` for :math:`\eta < \eta_{\max} = 2 / \hat L`. Near an
exact fit :math:`\eta_{\max} \to 1 / \max(L_W, L_H)`. The bound is *local* (the loss is quartic in the joint
variables): it holds for the step from the current point, which is how a schedule uses it (recomputed every
step; ``safe=true`` clips any schedule to it, :class:`mlrsnet.schedules.drivers.SafeDriver`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from mlrsnet.errors import ConfigError
from mlrsnet.tasks.base import Forward, Task, TaskConfig, TaskInfo
from mlrsnet.tasks.registry import register_dataset
from mlrsnet.typed import setting

__all__ = ["NMFModel", "NMFTask", "nmf_stability_bound", "synthetic_nmf_matrix"]


class NMFModel(nn.Module):
    """The factors ``W`` (n x r) and ``H`` (r x m); ``forward(rows)`` is ``W[rows] @ H``."""

    def __init__(self, n: int, m: int, rank: int, scale: float) -> None:
        super().__init__()
        # U(0, a) entries with rank * (a/2)^2 = scale, the mean of X: the fit starts at the right magnitude,
        # and W and H have entries of one size (the product is invariant to W D, D^-1 H; this D balances them).
        a = 2.0 * (scale / rank) ** 0.5
        self.W = nn.Parameter(torch.rand(n, rank) * a)
        self.H = nn.Parameter(torch.rand(rank, m) * a)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.W[rows] @ self.H

    @torch.no_grad()
    def project_(self) -> None:
        """The projection onto the feasible set: W, H >= 0."""
        self.W.clamp_(min=0)
        self.H.clamp_(min=0)


def nmf_stability_bound(w_rows: torch.Tensor, h: torch.Tensor, residual: torch.Tensor | None = None) -> float:
    r"""eta_max = 2 / (2 max(L_W, L_H) + ||R_B||_2 / |B|), with L_H = lambda_max(W_B^T W_B) / |B| and
    L_W = lambda_max(H H^T) / |B| (the module docstring derives it). ``w_rows`` is W_B (|B| x r), ``h`` is H,
    ``residual`` the masked residual M * (W_B H - X_B) (None: an exact fit, eta_max = 1 / max(L_W, L_H))."""
    b = w_rows.shape[0]
    w = w_rows.detach().double()
    hh = h.detach().double()
    l_h = float(torch.linalg.eigvalsh(w.T @ w)[-1]) / b
    l_w = float(torch.linalg.eigvalsh(hh @ hh.T)[-1]) / b
    res = 0.0 if residual is None else float(torch.linalg.matrix_norm(residual.detach().double(), ord=2)) / b
    curvature = 2.0 * max(l_h, l_w) + res
    return 2.0 / curvature if curvature > 0 else float("inf")


def synthetic_nmf_matrix(n: int, m: int, rank: int, noise: float, generator: torch.Generator) -> torch.Tensor:
    """X = W H + noise, clamped at 0: W, H with i.i.d. Exp(1) entries (nonnegative, sparse-ish), X scaled to
    mean 1, then Gaussian noise of std ``noise`` times X's std."""
    w = torch.empty(n, rank).exponential_(generator=generator)
    h = torch.empty(rank, m).exponential_(generator=generator)
    x = w @ h
    x = x / x.mean()
    x = x + noise * x.std() * torch.randn(n, m, generator=generator)
    return x.clamp_(min=0)


class NMFTask(Task):
    """Stochastic NMF of one matrix (the module docstring): row mini-batches, projected SGD, the relative
    error on held-out entries as metric, and the stability bound of the last training batch.

    Batches are ``(rows, x_rows, mask_rows)``; the loss is pure in ``forward`` (``W[rows] @ H``)."""

    def __init__(self, info: TaskInfo, x: torch.Tensor, split: torch.Tensor, rank: int, batch_size: int,
                 meta_batch_size: int, seed: int, device: torch.device) -> None:
        self.info = info
        self.device = device
        self.x = x.to(device)
        self.masks = {name: (split == k).to(device=device, dtype=x.dtype)
                      for k, name in enumerate(("train", "meta", "test"))}
        self.rank = int(rank)
        self.batch_size = min(int(batch_size), x.shape[0])
        self.meta_batch_size = min(int(meta_batch_size), x.shape[0])
        self.generator = torch.Generator().manual_seed(seed)
        self.meta_generator = torch.Generator().manual_seed(seed + 7919)
        self._last: tuple | None = None

    def build_model(self) -> nn.Module:
        mean = float((self.x * self.masks["train"]).sum() / self.masks["train"].sum().clamp(min=1))
        return NMFModel(self.x.shape[0], self.x.shape[1], self.rank, max(mean, 1e-3)).to(self.device)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.x.shape[0] // self.batch_size)

    def _batch(self, rows: torch.Tensor, split: str) -> tuple:
        rows = rows.to(self.device)
        return rows, self.x[rows], self.masks[split][rows]

    def train_batches(self, epoch: int) -> Iterator[tuple]:
        perm = torch.randperm(self.x.shape[0], generator=self.generator)
        for s in range(self.steps_per_epoch):
            yield self._batch(perm[s * self.batch_size:(s + 1) * self.batch_size], "train")

    def random_train_batch(self) -> tuple:
        rows = torch.randint(0, self.x.shape[0], (self.batch_size,), generator=self.meta_generator)
        return self._batch(rows, "train")

    def meta_batch(self) -> tuple:
        rows = torch.randperm(self.x.shape[0], generator=self.meta_generator)[: self.meta_batch_size]
        return self._batch(rows, "meta")

    def loss(self, forward: Forward, batch: tuple) -> torch.Tensor:
        rows, x, mask = batch
        r = (forward(rows) - x) * mask
        return 0.5 * (r * r).sum() / rows.numel()

    def train_loss(self, model: nn.Module, batch: tuple) -> torch.Tensor:
        self._last = (model, batch)
        return self.loss(model, batch)

    def after_step(self, model: nn.Module) -> None:
        model.project_()

    def stability_bound(self, model: nn.Module) -> float | None:
        """eta_max of the last training batch (:func:`nmf_stability_bound`) at the current factors."""
        if self._last is None:
            return None
        rows, x, mask = self._last[1]
        with torch.no_grad():
            w = model.W[rows]
            residual = (w @ model.H - x) * mask
        return nmf_stability_bound(w, model.H, residual)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str = "test") -> dict[str, float]:
        mask = self.masks[split]
        r = (model.W @ model.H - self.x) * mask
        err = float(torch.linalg.vector_norm(r) / torch.linalg.vector_norm(self.x * mask).clamp(min=1e-12))
        return {"loss": float(0.5 * (r * r).sum() / self.x.shape[0]), "rel_error": err}


@dataclass(kw_only=True)
class NMFConfig(TaskConfig):
    """Stochastic NMF of a nonnegative matrix: entries held out for the meta and test splits."""

    rank: int = setting(8, "rank of the factors W, H", ge=1)
    meta_fraction: float = setting(0.1, "entries held out for validation (the meta split)", gt=0, lt=1)
    test_fraction: float = setting(0.1, "entries held out for the reported metric (never used for a choice)", gt=0,
                                   lt=1)

    def check(self, prefix: str) -> None:
        if not self.meta_fraction + self.test_fraction < 1:
            raise ConfigError(f"{prefix}meta_fraction ({self.meta_fraction}) and {prefix}test_fraction "
                              f"({self.test_fraction}) must be positive and sum to less than 1")


@dataclass(kw_only=True)
class SyntheticNMFConfig(NMFConfig):
    """A synthetic nonnegative matrix X = W H + noise, a fresh instance per seed."""

    rows: int = setting(300, "rows of X", ge=2)
    cols: int = setting(60, "columns of X", ge=2)
    true_rank: int | None = setting(None, "rank of the true W H (null: rank)", ge=1)
    noise_level: float = setting(0.1, "Gaussian noise, times the std of W H", ge=0)
    instance_offset: int = setting(0, "instance = instance_offset + seed (RL agents train on offsets 0.., are "
                                   "evaluated on held-out ones)", ge=0)


def _entry_split(n: int, m: int, cfg: NMFConfig, generator: torch.Generator) -> torch.Tensor:
    """0 / 1 / 2 (train / meta / test) for every entry: ``meta_fraction`` and ``test_fraction`` of the entries,
    uniformly at random."""
    meta, test = cfg.meta_fraction, cfg.test_fraction
    u = torch.rand(n, m, generator=generator)
    return (u < meta + test).long() + (u < test).long()


def _nmf_task(cfg: NMFConfig, x: torch.Tensor, split_seed: int, seed: int, device: torch.device) -> NMFTask:
    split = _entry_split(x.shape[0], x.shape[1], cfg, torch.Generator().manual_seed(split_seed))
    info = TaskInfo(name=cfg.name, num_classes=1, metric="rel_error", higher_is_better=False)
    return NMFTask(info, x, split, cfg.rank, cfg.batch_size, cfg.meta_batch_size, seed, device)


@register_dataset("nmf_synthetic", SyntheticNMFConfig)
def build_nmf_synthetic(cfg: SyntheticNMFConfig, seed: int, device: torch.device) -> NMFTask:
    """A fresh random instance per seed (:func:`synthetic_nmf_matrix` with ``rows``, ``cols``, ``true_rank``,
    ``noise_level``; instance and entry split drawn from ``instance_offset + seed``)."""
    inst = cfg.instance_offset + seed
    g = torch.Generator().manual_seed(1_000_003 * (inst + 1))
    true_rank = cfg.rank if cfg.true_rank is None else cfg.true_rank
    x = synthetic_nmf_matrix(cfg.rows, cfg.cols, true_rank, cfg.noise_level, g)
    return _nmf_task(cfg, x, 1_000_003 * (inst + 1) + 1, seed, device)


@register_dataset("nmf_digits", NMFConfig)
def build_nmf_digits(cfg: NMFConfig, seed: int, device: torch.device) -> NMFTask:
    """scikit-learn's digits as a 1797 x 64 nonnegative matrix (pixel values / 16); the entry split is fixed
    (``split_seed``), the initialisation and data order follow the seed."""
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    return _nmf_task(cfg, x, cfg.split_seed, seed, device)
