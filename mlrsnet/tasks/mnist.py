"""The MNIST family as tasks: Fashion-MNIST (the one real image benchmark reachable offline here, Debian's
``dataset-fashion-mnist``), MNIST and KMNIST, from their IDX files (:mod:`mlrsnet.tasks.data.idx`).

Images stay uint8 on the task's device; a training batch is randomly cropped (zero padding ``crop_pad``,
default 2) and flipped horizontally (``flip``: valid for clothes, not for digits or characters) in one batched
operation, as the paper's image tasks do. The class-balanced meta set (``meta_size``, default 1,000) is carved
from the 60,000 training images and removed from training; ``train_size`` then keeps a class-balanced subset of
the rest (``null``: all of it), for CPU-scale runs; label noise touches that training subset only. The 10,000
test images are reported, never used for a choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from mlrsnet.errors import ConfigError
from mlrsnet.tasks.base import ClassificationConfig, ClassificationData, ClassificationTask, TaskInfo
from mlrsnet.tasks.data.augment import augment_batch, normalize_batch
from mlrsnet.tasks.data.idx import MNIST_FAMILY, load_mnist_family
from mlrsnet.tasks.data.splits import class_balanced_split, corrupt_labels
from mlrsnet.tasks.registry import register_dataset
from mlrsnet.typed import setting

__all__ = ["TRAIN_IMAGES", "MnistConfig", "mnist_task"]

TRAIN_IMAGES = 60_000  # training images in each data set of the family


@dataclass(kw_only=True)
class MnistConfig(ClassificationConfig):
    """A data set of the MNIST family (28x28 greyscale, 10 classes, 60k/10k)."""

    data_root: str | None = setting(None, "looked in first: <data_root>/<name>/ and <data_root>/<Name>/raw/ (the "
                                    "run's data.root); Fashion-MNIST then in /usr/share/datasets/fashion-mnist")
    meta_size: int = setting(1000, "class-balanced meta-validation set carved from the 60k training images and "
                             "removed from training", ge=1, example=1000)
    train_size: int | None = setting(None, "a class-balanced training subset of this many images (a multiple of "
                                     "10); null: every image left after the meta set", ge=10, example=10000)
    crop_pad: int = setting(2, "zero padding of the random crop", ge=0)
    flip: bool = setting(True, "random horizontal flips (valid for clothes; set false for digits)")
    eval_batch_size: int = setting(1000, "batch size of evaluation passes", ge=1)

    def check(self, prefix: str) -> None:
        if self.train_size is not None and self.train_size % 10:
            raise ConfigError(f"{prefix}train_size={self.train_size} is not a multiple of the 10 classes; set "
                              f"{prefix}train_size={self.train_size - self.train_size % 10 or 10}")
        # The family's files hold 60,000 training images; files of another length are checked when they are read.
        if self.meta_size >= TRAIN_IMAGES:
            raise ConfigError(f"{prefix}meta_size={self.meta_size} leaves no training image of the {TRAIN_IMAGES:,}; "
                              f"lower it (default {prefix}meta_size=1000)")
        left = TRAIN_IMAGES - self.meta_size
        if self.train_size is not None and self.train_size > left:
            raise ConfigError(f"{prefix}train_size={self.train_size} is larger than the {left:,} training images "
                              f"left after the meta set ({prefix}meta_size={self.meta_size}); lower it, or set "
                              f"{prefix}train_size=null for all of them")


def _augment(x: torch.Tensor, generator: torch.Generator, mean: tuple[float, ...], std: tuple[float, ...],
             crop_pad: int, flip: bool) -> torch.Tensor:
    return augment_batch(x, mean, std, generator, crop_pad=crop_pad, flip=flip)


def mnist_task(name: str, cfg: MnistConfig, seed: int, device: torch.device) -> ClassificationTask:
    """Data set ``name`` of the family as a :class:`ClassificationTask` (the module docstring)."""
    splits = load_mnist_family(name, cfg.data_root or ".")
    g = torch.Generator().manual_seed(cfg.split_seed)
    y = splits.train_y
    train_idx, meta_idx = class_balanced_split(y, cfg.meta_size, 10, g)
    if cfg.train_size is not None:
        if cfg.train_size > train_idx.numel():
            raise ConfigError(f"task.train_size={cfg.train_size} is larger than the {train_idx.numel():,} training "
                              f"images left after the meta set; lower it, or set task.train_size=null for all")
        if cfg.train_size < train_idx.numel():
            _, keep = class_balanced_split(y[train_idx], cfg.train_size, 10, g)
            train_idx = train_idx[keep]
    if cfg.train_fraction < 1.0:
        keep = torch.randperm(train_idx.numel(), generator=g)[: max(1, round(cfg.train_fraction * train_idx.numel()))]
        train_idx = torch.sort(train_idx[keep]).values
    clean = y[train_idx]
    noisy = corrupt_labels(clean, cfg.noise.kind, cfg.noise.rate, 10, torch.Generator().manual_seed(seed + 104729))
    data = ClassificationData(
        train_x=splits.train_x[train_idx].to(device), train_y=noisy.to(device),
        meta_x=splits.train_x[meta_idx].to(device), meta_y=y[meta_idx].to(device),
        test_x=splits.test_x.to(device), test_y=splits.test_y.to(device), clean_train_y=clean.to(device),
    )
    return ClassificationTask(
        TaskInfo(name=cfg.name, num_classes=10), data, cfg.model, cfg.model_kwargs, cfg.batch_size,
        cfg.meta_batch_size, seed,
        transform_train=partial(_augment, mean=splits.mean, std=splits.std, crop_pad=cfg.crop_pad, flip=cfg.flip),
        transform_eval=partial(normalize_batch, mean=splits.mean, std=splits.std),
        eval_batch_size=cfg.eval_batch_size,
    )


for _name in MNIST_FAMILY:
    register_dataset(_name, MnistConfig)(partial(mnist_task, _name))
