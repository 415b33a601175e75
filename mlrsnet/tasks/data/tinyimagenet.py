"""Tiny ImageNet (CS231n): 200 classes, 500 train and 50 val 64x64 JPEGs per class.

The official test images are unlabelled, so the labelled ``val`` split serves as the test split.
Decoding the ~110k JPEGs took ~20 s on 2 threads here (longer from a cold network disk), so the
decoded arrays are cached once as an uncompressed ``.npz`` (~1.4 GB) beside the JPEG tree; later
loads read only the cache.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mlrsnet.errors import DataMissingError
from mlrsnet.tasks.data.download import Remote, ensure_files
from mlrsnet.tasks.data.types import ImageSplits

TINYIMAGENET_DIR = "tiny-imagenet-200"
TINYIMAGENET_REMOTE = Remote(
    "http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de", unpack=True
)
# Per-channel mean/std of the training split, the usual published values.
TINYIMAGENET_MEAN, TINYIMAGENET_STD = (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)
CACHE_NAME = "decoded-uint8-v1.npz"
_SIZE = 64
_log = logging.getLogger(__name__)


def load_tinyimagenet(root: str | os.PathLike[str], download: bool = True) -> ImageSplits:
    """Tiny ImageNet (100k train / 10k val-as-test, 64x64 RGB, 200 classes in ``wnids.txt`` order)."""
    cache = Path(root).expanduser() / TINYIMAGENET_DIR / CACHE_NAME
    arrays = _read_cache(cache)
    if arrays is None:
        parts = ("wnids.txt", "train", "val/images", "val/val_annotations.txt")
        files = [f"{TINYIMAGENET_DIR}/{f}" for f in parts]
        base = ensure_files(root, "Tiny ImageNet", files, [TINYIMAGENET_REMOTE], download) / TINYIMAGENET_DIR
        arrays = _decode_tree(base)
        _write_cache(cache, arrays)
    return ImageSplits(
        torch.from_numpy(arrays["train_x"]),
        torch.from_numpy(arrays["train_y"]),
        torch.from_numpy(arrays["test_x"]),
        torch.from_numpy(arrays["test_y"]),
        int(arrays["num_classes"]),
        TINYIMAGENET_MEAN,
        TINYIMAGENET_STD,
    )


def _decode_tree(base: Path) -> dict[str, np.ndarray]:
    wnids = (base / "wnids.txt").read_text().split()
    index = {w: i for i, w in enumerate(wnids)}
    train_paths, train_y = [], []
    for w in wnids:
        paths = sorted((base / "train" / w / "images").glob("*.JPEG"))
        train_paths += paths
        train_y += [index[w]] * len(paths)
    test_paths, test_y = [], []
    for line in sorted((base / "val" / "val_annotations.txt").read_text().splitlines()):
        if line.strip():
            filename, wnid = line.split("\t")[:2]
            if wnid not in index:
                raise DataMissingError(f"{base}/val/val_annotations.txt names {wnid}, absent from wnids.txt")
            test_paths.append(base / "val" / "images" / filename)
            test_y.append(index[wnid])
    return {
        "train_x": _decode_images(train_paths),
        "train_y": np.asarray(train_y, dtype=np.int64),
        "test_x": _decode_images(test_paths),
        "test_y": np.asarray(test_y, dtype=np.int64),
        "num_classes": np.asarray(len(wnids)),
    }


def _decode_images(paths: list[Path]) -> np.ndarray:
    """(N, 3, 64, 64) uint8; threads help because Pillow releases the GIL while decoding."""
    out = np.empty((len(paths), 3, _SIZE, _SIZE), dtype=np.uint8)

    def decode(i: int) -> None:
        with Image.open(paths[i]) as im:
            if im.size != (_SIZE, _SIZE):
                raise DataMissingError(f"{paths[i]} is {im.size}, expected 64x64; re-download Tiny ImageNet")
            # Some training images are greyscale; the networks expect three channels.
            out[i] = np.asarray(im.convert("RGB")).transpose(2, 0, 1)

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(decode, range(len(paths))))
    return out


def _read_cache(cache: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or ``None`` if there is no readable cache (then the JPEGs are decoded again)."""
    try:
        with np.load(cache, allow_pickle=False) as z:
            return {k: z[k] for k in ("train_x", "train_y", "test_x", "test_y", "num_classes")}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _write_cache(cache: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write through a temporary file so a crash never leaves a truncated cache; a read-only or full
    disk only costs decoding again next time, so it is a warning, not an error."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{CACHE_NAME}.", suffix=".part", dir=cache.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, cache)
    except OSError as e:
        _log.warning("could not cache decoded Tiny ImageNet at %s (%s)", cache, e)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
