"""Standard CIFAR-style augmentation applied to a whole uint8 batch at once, on the batch's device.

Datasets are held in memory as uint8 tensors (see ``types.py``), so there is no per-sample
DataLoader pipeline: a training step augments its batch with one gather, which keeps a GPU busy
where per-image PIL transforms would starve it. The result matches torchvision's
``RandomCrop(size, padding=crop_pad)`` (zero fill) + ``RandomHorizontalFlip`` + ``ToTensor`` +
``Normalize``, in distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F


def normalize_batch(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel, as float32: the evaluation-time transform."""
    _check_images(x)
    m, s = _channel_stats(tuple(mean), tuple(std), x.device)
    return (x.float() / 255.0 - m) / s


@lru_cache(maxsize=32)
def _channel_stats(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, C, 1, 1) mean and std on ``device``, made once: building them from Python floats at every
    batch is a blocking host-to-device copy, which makes the host wait for the GPU at every step."""

    def column(values: tuple[float, ...]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    return column(mean), column(std)


def augment_batch(
    x: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    generator: torch.Generator,
    crop_pad: int = 4,
    flip: bool = True,
) -> torch.Tensor:
    """Random crop from the zero-padded image, random horizontal flip, then :func:`normalize_batch`.

    ``x`` is uint8 (B, C, H, W). Randomness comes only from ``generator`` (offsets first, then flips),
    so the same seed gives the same batch; the generator may live on the CPU while ``x`` is on a GPU.
    """
    _check_images(x)
    b, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).expand(b, h)
    cols = torch.arange(w, device=x.device).expand(b, w)
    if crop_pad > 0:
        x = F.pad(x, (crop_pad, crop_pad, crop_pad, crop_pad))
        rows = rows + _randint(2 * crop_pad + 1, b, generator, x.device)[:, None]
        cols = cols + _randint(2 * crop_pad + 1, b, generator, x.device)[:, None]
    if flip:
        flipped = _randint(2, b, generator, x.device).bool()
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    # One gather per image over its flattened planes, with an index shared by the channels: 5-10x
    # faster than advanced indexing with a (B, C, H, W) index per dimension.
    hp, wp = x.shape[-2:]
    index = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    crops = torch.gather(x.reshape(b, c, hp * wp), 2, index).view(b, c, h, w)
    return normalize_batch(crops, mean, std)


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    r = torch.randint(high, (n,), generator=generator, device=generator.device)
    if r.device.type == "cpu" and device.type == "cuda":
        r = r.pin_memory()  # only a copy from pinned memory is guaranteed not to wait for the GPU
    return r.to(device, non_blocking=True)


def _check_images(x: torch.Tensor) -> None:
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"expected a uint8 (B, C, H, W) image batch, got {x.dtype} {tuple(x.shape)}")
