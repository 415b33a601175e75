"""Writers of tiny datasets in each dataset's true on-disk format, shared by the loader and task tests.

Every writer lays files out under a data root exactly as the official archive unpacks, so that the
real loaders (and the real task builders on top of them) read them without knowing they are fakes.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image


def cifar_images(n: int, seed: int) -> np.ndarray:
    """``n`` random CIFAR rows: 3,072 uint8 values each (1,024 red, green, blue)."""
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def py2_pickle(value: object) -> bytes:
    """Pickle ``value`` the way Python 2 + numpy 1.x did for the official batches (str, numpy.core)."""
    if isinstance(value, bytes):
        return b"T" + struct.pack("<i", len(value)) + value  # BINSTRING: a Python-2 str
    if isinstance(value, int):
        return b"J" + struct.pack("<i", value)
    if isinstance(value, list):
        return b"(" + b"".join(map(py2_pickle, value)) + b"l"
    if isinstance(value, dict):
        return b"}(" + b"".join(py2_pickle(k) + py2_pickle(v) for k, v in value.items()) + b"u"
    assert isinstance(value, np.ndarray) and value.dtype == np.uint8
    new_array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + py2_pickle(0) + b"\x85"
                 + py2_pickle(b"b"))
    dtype = b"cnumpy\ndtype\n" + py2_pickle(b"u1") + py2_pickle(0) + py2_pickle(1) + b"\x87R"
    dtype_state = (b"(" + py2_pickle(3) + py2_pickle(b"|") + b"NNN" + py2_pickle(-1) + py2_pickle(-1)
                   + py2_pickle(0) + b"tb")
    shape = b"(" + b"".join(py2_pickle(n) for n in value.shape) + b"t"
    state = b"(" + py2_pickle(1) + shape + dtype + dtype_state + b"\x89" + py2_pickle(value.tobytes()) + b"t"
    return new_array + b"\x87R" + state + b"b"


def write_pickle(path: Path, batch: dict, python2: bool) -> None:
    """Write a CIFAR batch as a Python-2 pickle (as distributed) or a Python-3 protocol-2 pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x80\x02" + py2_pickle(batch) + b"." if python2 else pickle.dumps(batch, protocol=2))


def write_cifar10(
    root: Path, per_batch: int = 2, test_labels: Sequence[int] = (9, 0, 5), python2: bool = False
) -> dict:
    """``root/cifar-10-batches-py``: five training batches of ``per_batch`` images (image j of batch i
    has label ``(i + j) % 10``) and a test batch; returns ``{i: (x, y), "test": (x, y)}``."""
    d = root / "cifar-10-batches-py"
    data: dict = {}
    for i in range(1, 6):
        x = cifar_images(per_batch, seed=i)
        y = [(i + j) % 10 for j in range(per_batch)]
        batch = {b"batch_label": b"training", b"labels": y, b"data": x, b"filenames": [b"a"] * per_batch}
        write_pickle(d / f"data_batch_{i}", batch, python2)
        data[i] = (x, y)
    x = cifar_images(len(test_labels), seed=99)
    y = list(test_labels)
    write_pickle(d / "test_batch", {b"labels": y, b"data": x}, python2)
    data["test"] = (x, y)
    return data


def write_cifar100(root: Path, train_labels: Sequence[int], test_labels: Sequence[int]) -> None:
    """``root/cifar-100-python/{train,test}`` with the given fine labels (coarse label = fine // 5)."""
    d = root / "cifar-100-python"
    for name, labels, python2 in (("train", train_labels, True), ("test", test_labels, False)):
        batch = {b"data": cifar_images(len(labels), seed=len(name)), b"fine_labels": list(labels),
                 b"coarse_labels": [y // 5 for y in labels]}
        write_pickle(d / name, batch, python2=python2)


def write_svhn_mat(path: Path, labels: Sequence[int], seed: int) -> np.ndarray:
    """An SVHN format-2 ``.mat`` file (X in MATLAB's (H, W, C, N) order, labels 1..10); returns X."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
    scipy.io.savemat(path, {"X": x, "y": np.asarray(labels, dtype=np.uint8).reshape(-1, 1)})
    return x


WNIDS = ["n02", "n01", "n03"]  # deliberately not sorted: class order must come from wnids.txt
COLOURS = {"n02": (200, 30, 30), "n01": (30, 200, 30), "n03": (30, 30, 200)}


def write_jpeg(path: Path, colour: tuple[int, int, int], mode: str = "RGB") -> None:
    """A uniform 64x64 JPEG of ``colour``, stored in ``mode`` (``"L"`` for a greyscale file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), colour).convert(mode).save(path, format="JPEG", quality=95)


def write_tinyimagenet(root: Path, per_class: int = 2) -> Path:
    """``root/tiny-imagenet-200`` with the classes ``WNIDS``: ``per_class`` training JPEGs each, one
    extra greyscale training image of class n03, and four annotated validation images."""
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for w in WNIDS:
        for k in range(per_class):
            write_jpeg(base / "train" / w / "images" / f"{w}_{k}.JPEG", COLOURS[w])
        (base / "train" / w / f"{w}_boxes.txt").write_text("")
    write_jpeg(base / "train" / "n03" / "images" / "n03_grey.JPEG", (90, 90, 90), mode="L")
    val = [("val_0.JPEG", "n03"), ("val_1.JPEG", "n02"), ("val_2.JPEG", "n01"), ("val_3.JPEG", "n03")]
    for name, w in val:
        write_jpeg(base / "val" / "images" / name, COLOURS[w])
    (base / "val" / "val_annotations.txt").write_text("".join(f"{n}\t{w}\t0\t0\t63\t63\n" for n, w in val))
    return base


def write_text_corpus(directory: Path, name_pattern: str, texts: dict[str, str]) -> None:
    """One UTF-8 file per split, e.g. ``write_text_corpus(root / "ptb", "ptb.{}.txt", {"train": ...})``."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, text in texts.items():
        (directory / name_pattern.format(split)).write_text(text, encoding="utf-8")
