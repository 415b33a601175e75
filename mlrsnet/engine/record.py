"""What a finished run leaves for the studies built on it: its per-example class probabilities
(``probs.npz``), which LREnsemble combines and the benchmark saves after every run."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from mlrsnet.errors import ConfigError
from mlrsnet.io import atomic_write_bytes

__all__ = ["PROBS_FILE", "load_probabilities", "save_probabilities"]

PROBS_FILE = "probs.npz"


def save_probabilities(path: str | Path, meta: tuple[Any, Any], test: tuple[Any, Any], **info: Any) -> None:
    """Write ``(probs [N, C], labels [N])`` of the meta and test splits (probabilities as float16) and a
    JSON ``info`` record to ``path`` (an ``.npz``), atomically."""
    arrays = {}
    for split, (probs, labels) in (("meta", meta), ("test", test)):
        arrays[f"{split}_probs"] = np.asarray(probs, dtype=np.float16)
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, info=np.array(json.dumps(info, default=str)), **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_probabilities(path: str | Path) -> dict[str, Any]:
    """The arrays of :func:`save_probabilities` (probabilities as float32) and ``info``."""
    try:
        with np.load(path) as z:
            out = {k: z[k].astype(np.float32) if k.endswith("_probs") else z[k] for k in z.files if k != "info"}
            out["info"] = json.loads(str(z["info"]))
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"cannot read the saved probabilities {path} ({err}); rerun the run that wrote them") \
            from None
    return out
