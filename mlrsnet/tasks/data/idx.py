"""The MNIST family (Fashion-MNIST, MNIST, KMNIST) from the original IDX files, gzipped or raw.

Nothing is downloaded: the files are read where a user or a package put them. Fashion-MNIST ships in Debian
(``apt-get install dataset-fashion-mnist``, as root, after ``apt-get update``: the four files in
``/usr/share/datasets/fashion-mnist/``). Each data set is looked for in ``data.root/<name>/``, then in
torchvision's layout ``data.root/<Name>/raw/``, then (Fashion-MNIST) in the Debian directory.

An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions, then each
dimension as a 32-bit integer) followed by the values; images are ``0x08`` (unsigned bytes) with 3 dimensions,
labels ``0x08`` with 1. Every check (magic number, shape, length, a label per image, label range) is a one-line
error naming the file.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlrsnet.errors import DataMissingError
from mlrsnet.tasks.data.types import ImageSplits

__all__ = ["DEBIAN_FASHION_MNIST", "MNIST_FAMILY", "MnistKind", "load_mnist_family", "read_idx"]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class MnistKind:
    """One data set of the family: where it is looked for, its statistics and how to get it."""

    title: str
    dirs: tuple[str, ...]  # below data.root
    system: tuple[Path, ...]  # system-wide directories (a distribution's package)
    mean: float
    std: float
    how: str  # how to get the files


MNIST_FAMILY: dict[str, MnistKind] = {
    "fashion_mnist": MnistKind("Fashion-MNIST", ("fashion-mnist", "FashionMNIST/raw"), (DEBIAN_FASHION_MNIST,),
                               0.2860, 0.3530, "apt-get install dataset-fashion-mnist (as root, after apt-get update)"),
    "mnist": MnistKind("MNIST", ("mnist", "MNIST/raw"), (), 0.1307, 0.3081,
                       "put the four IDX files of yann.lecun.com/exdb/mnist there"),
    "kmnist": MnistKind("KMNIST", ("kmnist", "KMNIST/raw"), (), 0.1918, 0.3483,
                        "put the four IDX files of github.com/rois-codh/kmnist there"),
}


def _open(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataMissingError(f"{path} is corrupt or truncated ({type(e).__name__}: {e}); replace the file "
                               "(e.g. reinstall its package)") from None


def read_idx(path: str | os.PathLike, ndim: int) -> np.ndarray:
    """The unsigned-byte array of IDX file ``path`` (gzipped when it ends in ``.gz``), which must have ``ndim``
    dimensions; a wrong magic number, shape or length is a one-line :class:`DataMissingError` naming the file."""
    path = Path(path)
    data = _open(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08 or data[3] != ndim:
        raise DataMissingError(f"{path} is not an IDX file of unsigned bytes with {ndim} dimension(s) (magic "
                               f"{data[:4].hex() or 'missing'}); replace the file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataMissingError(f"{path} is truncated (its header is incomplete); replace the file")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(shape))
    if len(data) - header != size:
        raise DataMissingError(f"{path} holds {len(data) - header} values where its header says {shape} "
                               f"({size}); the file is truncated or corrupt, replace it")
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(shape)


def _find(kind: MnistKind, root: Path) -> Path:
    """The first directory holding all four files (gzipped or raw)."""
    searched = [root / d for d in kind.dirs] + list(kind.system)
    for folder in searched:
        if all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in FILES):
            return folder
    raise DataMissingError(
        f"{kind.title} is not on disk: no directory of {', '.join(str(d) for d in searched)} holds "
        f"{', '.join(f + '[.gz]' for f in FILES)}; {kind.how}, or point data.root at a directory with them. "
        "Nothing is downloaded")


def _file(folder: Path, name: str) -> Path:
    raw = folder / name
    return raw if raw.is_file() else folder / f"{name}.gz"


def load_mnist_family(name: str, root: str | os.PathLike) -> ImageSplits:
    """Data set ``name`` of :data:`MNIST_FAMILY` (60k/10k 28x28 greyscale images, 10 classes) as uint8
    ``(N, 1, 28, 28)`` tensors; the meta split and subsets are the task's (:mod:`mlrsnet.tasks.mnist`)."""
    kind = MNIST_FAMILY[name]
    folder = _find(kind, Path(root).expanduser())
    arrays = [read_idx(_file(folder, f), 3 if "images" in f else 1) for f in FILES]
    for images, labels, split in ((arrays[0], arrays[1], "train"), (arrays[2], arrays[3], "t10k")):
        if len(images) != len(labels):
            raise DataMissingError(f"{folder}: {split} has {len(images)} images and {len(labels)} labels; replace "
                                   "the files")
        if labels.size and int(labels.max()) > 9:
            raise DataMissingError(f"{_file(folder, f'{split}-labels-idx1-ubyte')} has label {int(labels.max())} "
                                   "outside 0..9; replace the file")
    x = [torch.from_numpy(a.copy()).unsqueeze(1) for a in (arrays[0], arrays[2])]
    y = [torch.from_numpy(a.astype(np.int64)) for a in (arrays[1], arrays[3])]
    return ImageSplits(x[0], y[0], x[1], y[1], 10, (kind.mean,), (kind.std,))
