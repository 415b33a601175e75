"""Containers every dataset loader returns, so that task builders do not care where data came from."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageSplits:
    """An image-classification dataset held in memory.

    ``*_x`` are ``uint8`` tensors of shape (N, C, H, W); ``*_y`` are ``int64`` class indices.
    ``mean``/``std`` are per-channel statistics in [0, 1] units used for normalisation.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class TextSplits:
    """A tokenised language-modelling corpus: 1-D ``int64`` token streams and the vocabulary.

    ``valid`` is the corpus' own validation stream when it has one (PTB, WikiText-2), else ``None``.
    """

    train: torch.Tensor
    valid: torch.Tensor | None
    test: torch.Tensor
    vocab: list[str]
