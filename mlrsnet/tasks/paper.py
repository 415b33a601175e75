"""The MLR-SNet paper's tasks: image classification on CIFAR-10/100, SVHN and Tiny ImageNet, and word-level
language modelling on Penn Treebank and WikiText-2.

Each builder reads its dataset with the loaders in :mod:`mlrsnet.tasks.data` from ``task.data_root``
(downloading it there when ``task.download`` allows), then:

- images stay ``uint8`` on the task's device; a training batch is cropped (zero padding
  ``task.crop_pad``), flipped (``task.flip``) and normalised in one batched operation
  (:func:`~mlrsnet.tasks.data.augment.augment_batch`), meta and test batches are only normalised. The
  meta set (``task.meta_size`` images, class-balanced) is carved from the training set and label noise
  (``task.noise``) touches the remaining training images only
  (:func:`~mlrsnet.tasks.offline.split_classification`);
- language models read contiguous BPTT slices of the training stream
  (:class:`~mlrsnet.tasks.base.LanguageModelTask`). The meta set is the corpus' validation stream
  (``task.meta_split: valid``) or the last ``task.meta_tokens`` tokens of the training stream, removed
  from training (``task.meta_split: train_tail``). The test stream is never a choice.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from mlrsnet.errors import ConfigError
from mlrsnet.tasks.base import (
    META_WINDOWS,
    META_WINDOWS_HELP,
    ClassificationConfig,
    ClassificationTask,
    LanguageModelTask,
    TaskConfig,
    TaskInfo,
)
from mlrsnet.tasks.data.augment import augment_batch, normalize_batch
from mlrsnet.tasks.data.cifar import load_cifar10, load_cifar100
from mlrsnet.tasks.data.svhn import load_svhn
from mlrsnet.tasks.data.text_corpora import load_ptb, load_wikitext2
from mlrsnet.tasks.data.tinyimagenet import load_tinyimagenet
from mlrsnet.tasks.data.types import ImageSplits, TextSplits
from mlrsnet.tasks.offline import split_classification
from mlrsnet.tasks.registry import register_dataset
from mlrsnet.typed import setting

ImageLoader = Callable[[str | os.PathLike[str], bool], ImageSplits]
TextLoader = Callable[[str | os.PathLike[str], bool], TextSplits]
META_SPLITS = ("valid", "train_tail")


@dataclass(kw_only=True)
class ImageConfig(ClassificationConfig):
    """An image data set on disk (CIFAR-10/100, SVHN, Tiny ImageNet), augmented on the device."""

    data_root: str | None = setting(None, "where the data set is read from (the run's data.root)")
    download: bool = setting(True, "download it there when missing (the run's data.download)")
    crop_pad: int = setting(4, "zero padding of the random crop", ge=0)
    flip: bool = setting(True, "random horizontal flips")
    meta_augment: bool = setting(False, "meta batches get the training augmentation, as the reference's meta loader "
                                 "(false: only normalised, as a validation set)")
    eval_batch_size: int = setting(1024, "batch size of evaluation passes", ge=1)


@dataclass(kw_only=True)
class CorpusConfig(TaskConfig):
    """A word-level corpus on disk (Penn Treebank, WikiText-2)."""

    data_root: str | None = setting(None, "where the corpus is read from (the run's data.root)")
    download: bool = setting(True, "download it there when missing (the run's data.download)")
    meta_split: str = setting("valid", "valid (the corpus' validation stream) | train_tail (the last meta_tokens "
                              "tokens of the training stream, removed from training)", choices=META_SPLITS)
    meta_tokens: int = setting(0, "tokens of the meta stream with meta_split=train_tail", ge=0)
    bptt: int = setting(35, "truncated back-propagation length", ge=1)
    eval_batch_size: int = setting(10, "batch size (parallel streams) of evaluation passes", ge=1)
    meta_windows: str = setting("random", META_WINDOWS_HELP, choices=META_WINDOWS)


def image_task(splits: ImageSplits, cfg: ImageConfig, seed: int, device: torch.device) -> ClassificationTask:
    """A :class:`ClassificationTask` over in-memory uint8 images: meta split, label noise and batched
    on-device augmentation as configured in the task config ``cfg``."""
    data = split_classification(
        splits.train_x, splits.train_y, splits.test_x, splits.test_y, splits.num_classes, cfg, seed, device
    )
    return ClassificationTask(
        TaskInfo(name=cfg.name, num_classes=splits.num_classes), data, cfg.model, cfg.model_kwargs, cfg.batch_size,
        cfg.meta_batch_size, seed,
        transform_train=partial(_augment, mean=splits.mean, std=splits.std, crop_pad=cfg.crop_pad, flip=cfg.flip),
        transform_eval=partial(normalize_batch, mean=splits.mean, std=splits.std),
        eval_batch_size=cfg.eval_batch_size, meta_augment=cfg.meta_augment,
    )


def _augment(
    x: torch.Tensor, generator: torch.Generator, mean: Sequence[float], std: Sequence[float], crop_pad: int,
    flip: bool,
) -> torch.Tensor:
    """:func:`augment_batch` with the argument order of ``ClassificationTask.transform_train``."""
    return augment_batch(x, mean, std, generator, crop_pad=crop_pad, flip=flip)


def language_model_task(splits: TextSplits, cfg: CorpusConfig, seed: int, device: torch.device) -> LanguageModelTask:
    """A :class:`LanguageModelTask` over a tokenised corpus, with the meta stream chosen by
    ``task.meta_split`` (see the module docstring)."""
    train = splits.train
    if cfg.meta_split == "valid":
        if splits.valid is None:
            raise ConfigError(f"task {cfg.name!r} has no validation split; use task.meta_split=train_tail")
        meta = splits.valid
    else:
        n = cfg.meta_tokens
        if not 0 < n < train.numel():
            raise ConfigError(
                f"task.meta_tokens={n} must be positive and smaller than the training stream "
                f"({train.numel()} tokens) when task.meta_split=train_tail"
            )
        train, meta = train[:-n], train[-n:]
    vocab = len(splits.vocab)
    info = TaskInfo(
        name=cfg.name, num_classes=vocab, loss_scale=math.log(vocab), metric="perplexity", higher_is_better=False,
    )
    return LanguageModelTask(
        info, train.to(device), meta.to(device), splits.test.to(device), cfg.model, cfg.model_kwargs,
        cfg.batch_size, cfg.bptt, cfg.meta_batch_size, seed, eval_batch_size=cfg.eval_batch_size,
        meta_windows=cfg.meta_windows,
    )


def _data_args(cfg: ImageConfig | CorpusConfig) -> tuple[str, bool]:
    """The loader arguments ``(root, download)`` from a task config."""
    if not cfg.data_root:
        raise ConfigError(f"task {cfg.name!r} needs task.data_root: set data.root=PATH")
    # Absolute, so that a missing-data error says exactly where it looked.
    return os.path.abspath(os.path.expanduser(cfg.data_root)), cfg.download


IMAGE_DATASETS: dict[str, ImageLoader] = {
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "svhn": load_svhn,  # train and test; the extra split is not used
    "tinyimagenet": load_tinyimagenet,  # the labelled val split serves as test
}
TEXT_DATASETS: dict[str, TextLoader] = {"ptb": load_ptb, "wikitext2": load_wikitext2}


def _image_builder(loader: ImageLoader) -> Callable[[ImageConfig, int, torch.device], ClassificationTask]:
    """The registry builder of an image dataset: its loader, then :func:`image_task`."""

    def build(cfg: ImageConfig, seed: int, device: torch.device) -> ClassificationTask:
        return image_task(loader(*_data_args(cfg)), cfg, seed, device)

    return build


def _text_builder(loader: TextLoader) -> Callable[[CorpusConfig, int, torch.device], LanguageModelTask]:
    """The registry builder of a text corpus: its loader, then :func:`language_model_task`."""

    def build(cfg: CorpusConfig, seed: int, device: torch.device) -> LanguageModelTask:
        return language_model_task(loader(*_data_args(cfg)), cfg, seed, device)

    return build


for _name, _image_loader in IMAGE_DATASETS.items():
    register_dataset(_name, ImageConfig)(_image_builder(_image_loader))
for _name, _text_loader in TEXT_DATASETS.items():
    register_dataset(_name, CorpusConfig)(_text_builder(_text_loader))
