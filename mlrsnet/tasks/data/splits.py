"""Meta-validation split and label noise.

The meta set is carved from the *training* set, class-balanced, and is disjoint from the examples the
model trains on (the reference code samples it from the training set without removing it, so the
meta objective partly measures training fit). Label noise corrupts the training subset only.
"""

from __future__ import annotations

import numpy as np
import torch

from mlrsnet.errors import ConfigError


def class_balanced_split(
    labels: torch.Tensor, meta_size: int, num_classes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (train_idx, meta_idx): ``meta_size // C`` examples of every class go to the
    meta set (the remainder spread over the first classes), the rest stay for training."""
    n = labels.numel()
    if meta_size < 0:
        raise ConfigError(f"meta_size must be >= 0, got {meta_size}")
    if meta_size >= n:
        raise ConfigError(
            f"meta_size={meta_size} is not smaller than the training set ({n} examples); "
            "lower task.meta_size"
        )
    labels = labels.cpu()
    per_class = [meta_size // num_classes + (1 if c < meta_size % num_classes else 0) for c in range(num_classes)]
    meta_parts = []
    for c, k in enumerate(per_class):
        idx = torch.nonzero(labels == c).flatten()
        if k > idx.numel():
            raise ConfigError(
                f"meta_size={meta_size} needs {k} examples of class {c} but the training set has "
                f"{idx.numel()}; lower task.meta_size"
            )
        meta_parts.append(idx[torch.randperm(idx.numel(), generator=generator)[:k]])
    meta_idx = torch.sort(torch.cat(meta_parts)).values
    mask = torch.ones(n, dtype=torch.bool)
    mask[meta_idx] = False
    return torch.nonzero(mask).flatten(), meta_idx


def corrupt_labels(
    labels: torch.Tensor, kind: str, rate: float, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """Return a corrupted copy of ``labels``.

    - ``sym`` (symmetric / uniform): exactly ``round(rate * n)`` examples, chosen uniformly, get a
      label drawn uniformly from the *other* C-1 classes, so the realised noise rate equals ``rate``.
    - ``pair`` (pair-flip, also called asymmetric): the same number of examples get label
      ``(y + 1) mod C``, the class-pair corruption of Han et al. (2018).
    - ``unif`` and ``flip``: the reference code's corruptions (its ``data_loader.py``, ``corruption_type``
      ``'unif'`` and ``'flip'``): every label is redrawn independently from a row of a transition matrix
      (:func:`reference_transition`), so the realised rate is random; under ``unif`` a redrawn label may
      be the true one (realised rate about ``rate * (C - 1) / C``). The draws come from ``generator``.
    - ``none``: unchanged.
    """
    if kind in ("none", None) or rate == 0:
        return labels.clone()
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"noise rate must be in [0, 1), got {rate}; set task.noise.rate accordingly")
    if num_classes < 2:
        raise ConfigError("label noise needs at least 2 classes")
    kind = {"asym": "pair", "asymmetric": "pair", "symmetric": "sym", "uniform": "sym"}.get(kind, kind)
    if kind in REFERENCE_KINDS:
        rows = reference_transition(kind, rate, num_classes)[labels.cpu().long()]
        return torch.multinomial(rows, 1, generator=generator).squeeze(1).to(labels.device, labels.dtype)
    n = labels.numel()
    k = int(round(rate * n))
    flip = torch.randperm(n, generator=generator)[:k]
    out = labels.clone()
    src = labels.cpu()[flip]
    if kind == "sym":
        offset = torch.randint(1, num_classes, (k,), generator=generator)
        new = (src + offset) % num_classes
    elif kind == "pair":
        new = (src + 1) % num_classes
    else:
        raise ConfigError(f"unknown noise kind {kind!r}; use task.noise.kind=sym, pair, unif, flip or none")
    out[flip.to(out.device)] = new.to(out.device)
    return out


REFERENCE_KINDS = ("unif", "flip")


def reference_transition(kind: str, rate: float, num_classes: int) -> torch.Tensor:
    """The reference code's label-transition matrix ``T`` (row: true class, column: noisy label).

    - ``unif``: ``rate / C`` everywhere plus ``1 - rate`` on the diagonal (a uniform redraw with
      probability ``rate``).
    - ``flip``: ``1 - rate`` on the diagonal and ``rate`` on one other class per row, that class chosen
      as the reference chooses it: in order of the rows, uniformly among the other classes, by NumPy's
      legacy generator seeded with 1, so the same mapping on every run.
    """
    c = num_classes
    if kind == "unif":
        t = np.full((c, c), rate / c) + (1.0 - rate) * np.eye(c)
    elif kind == "flip":
        t = np.eye(c) * (1.0 - rate)
        rs = np.random.RandomState(1)
        classes = np.arange(c)
        for i in range(c):
            t[i, rs.choice(classes[classes != i])] = rate
    else:
        raise ConfigError(f"{kind!r} is not one of the reference's corruptions {REFERENCE_KINDS}")
    return torch.from_numpy(t)
