"""CIFAR-10 and CIFAR-100 from the original "python version" pickle batches (Krizhevsky, 2009).

The batches are Python-2 pickles, so they are read with a restricted unpickler that only rebuilds
numpy arrays: a tampered file in a shared data directory cannot execute code.
"""

from __future__ import annotations

import codecs
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from mlrsnet.errors import DataMissingError
from mlrsnet.tasks.data.download import Remote, ensure_files
from mlrsnet.tasks.data.types import ImageSplits

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
_KRIZ = "https://www.cs.toronto.edu/~kriz"
CIFAR10_REMOTE = Remote(f"{_KRIZ}/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", unpack=True)
CIFAR100_REMOTE = Remote(f"{_KRIZ}/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", unpack=True)
# Per-channel mean/std of each training set, the usual published values.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

# numpy moved _reconstruct from numpy.core to numpy._core in 2.0; files written by either refer to
# it by their own module name, so both names resolve to the function numpy itself pickles with.
_reconstruct = np.zeros(0).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch") from None


def load_cifar10(root: str | os.PathLike[str], download: bool = True) -> ImageSplits:
    """CIFAR-10 (50k train / 10k test, 32x32 RGB, 10 classes) from ``root/cifar-10-batches-py``."""
    train = [f"{CIFAR10_DIR}/data_batch_{i}" for i in range(1, 6)]
    test = [f"{CIFAR10_DIR}/test_batch"]
    root = ensure_files(root, "CIFAR-10", train + test, [CIFAR10_REMOTE], download)
    return _splits(root, train, test, "labels", 10, CIFAR10_MEAN, CIFAR10_STD)


def load_cifar100(root: str | os.PathLike[str], download: bool = True) -> ImageSplits:
    """CIFAR-100 (50k train / 10k test, 32x32 RGB, 100 fine classes) from ``root/cifar-100-python``."""
    train = [f"{CIFAR100_DIR}/train"]
    test = [f"{CIFAR100_DIR}/test"]
    root = ensure_files(root, "CIFAR-100", train + test, [CIFAR100_REMOTE], download)
    return _splits(root, train, test, "fine_labels", 100, CIFAR100_MEAN, CIFAR100_STD)


def _splits(
    root: Path,
    train: list[str],
    test: list[str],
    label_key: str,
    num_classes: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> ImageSplits:
    train_x, train_y = _read_batches(root, train, label_key)
    test_x, test_y = _read_batches(root, test, label_key)
    return ImageSplits(train_x, train_y, test_x, test_y, num_classes, mean, std)


def _read_batches(root: Path, files: list[str], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for f in files:
        batch = _read_batch(root / f)
        try:
            data, labels = batch["data"], batch[label_key]
        except KeyError as e:
            raise DataMissingError(f"{root / f} has no {e} entry; delete it and re-download") from e
        # Each row is 1024 red, then 1024 green, then 1024 blue values, each plane row-major.
        xs.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(labels, dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def _read_batch(path: Path) -> dict[str, object]:
    """Unpickle one batch; keys are ``str`` whether the file was written by Python 2 or 3."""
    try:
        with open(path, "rb") as f:
            # latin1 turns Python-2 str (keys and numpy's raw buffers) back into the bytes they were.
            batch = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DataMissingError(f"{path} is not a valid CIFAR batch ({e}); delete it and re-download") from e
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
