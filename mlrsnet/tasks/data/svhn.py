"""SVHN cropped digits (Netzer et al., 2011), format 2: ``train_32x32.mat`` and ``test_32x32.mat``.

The ``extra`` split is not used, as in the MLR-SNet experiments.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io
import torch

from mlrsnet.tasks.data.download import Remote, ensure_files
from mlrsnet.tasks.data.types import ImageSplits

SVHN_DIR = "svhn"
_UFLDL = "http://ufldl.stanford.edu/housenumbers"
SVHN_REMOTES = (
    Remote(f"{_UFLDL}/train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", subdir=SVHN_DIR),
    Remote(f"{_UFLDL}/test_32x32.mat", "eb5a983be6a315427106f1b8d9f8b4f7", subdir=SVHN_DIR),
)
# Per-channel mean/std of the training split, the usual published values.
SVHN_MEAN, SVHN_STD = (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)


def load_svhn(root: str | os.PathLike[str], download: bool = True) -> ImageSplits:
    """SVHN (73,257 train / 26,032 test, 32x32 RGB, digits 0-9) from ``root/svhn/*_32x32.mat``."""
    files = [f"{SVHN_DIR}/train_32x32.mat", f"{SVHN_DIR}/test_32x32.mat"]
    root = ensure_files(root, "SVHN", files, SVHN_REMOTES, download)
    train_x, train_y = _read_mat(root / files[0])
    test_x, test_y = _read_mat(root / files[1])
    return ImageSplits(train_x, train_y, test_x, test_y, 10, SVHN_MEAN, SVHN_STD)


def _read_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    # X is stored (H, W, C, N) in MATLAB order; labels are 1..10 with 10 standing for the digit 0.
    x = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1), dtype=np.uint8)
    y = mat["y"].reshape(-1).astype(np.int64) % 10
    return torch.from_numpy(x), torch.from_numpy(y)
