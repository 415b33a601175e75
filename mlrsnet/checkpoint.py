"""Versioned, atomic checkpoints.

A file is written to a temporary name in the target directory and renamed into place, so a crash
never leaves a half-written checkpoint. Every checkpoint carries ``format`` and ``schema_version``;
loading checks both and turns every failure into a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from mlrsnet.errors import CheckpointError
from mlrsnet.net import MLRSNet, MLRSNetConfig

FORMAT = "mlrsnet"
SCHEMA_VERSION = 1
KINDS = ("mlrsnet", "run_state", "rl_policy")
SNAPSHOT_DIR = "snapshots"  # a meta-training run's MLR-SNet at a few epochs: snapshots/mlrsnet_epochNNNN.pt


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save(path: str | os.PathLike, kind: str, payload: dict) -> None:
    """Save ``payload`` (tensors, dicts, numbers) as a versioned checkpoint of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "schema_version": SCHEMA_VERSION, "kind": kind, **payload}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: str | os.PathLike, kind: str, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate a checkpoint of ``kind``; every failure is a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass checkpoint=PATH to an existing .pt file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises many types for truncated / foreign files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a torch file ({type(e).__name__}); "
            "re-create it with python -m mlrsnet.train"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mlrsnet checkpoint (no 'format: {FORMAT}' header)")
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has schema version {version}, this mlrsnet reads version {SCHEMA_VERSION}; "
            "re-create it with this version of python -m mlrsnet.train"
        )
    if obj.get("kind") != kind:
        raise CheckpointError(f"checkpoint {path} holds a {obj.get('kind')!r}, expected a {kind!r} checkpoint")
    return obj


def save_mlrsnet(path: str | os.PathLike, net: MLRSNet, **meta: Any) -> None:
    """Save an MLR-SNet: weights, architecture, gamma, plus metadata (task, config, versions...)."""
    save(
        path,
        "mlrsnet",
        {
            "net_config": net.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "gamma": float(net.gamma),
            **meta,
        },
    )


def load_mlrsnet(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[MLRSNet, dict]:
    """Rebuild an MLR-SNet from a checkpoint; returns ``(net, metadata)``."""
    obj = load(path, "mlrsnet", map_location=map_location)
    try:
        config = MLRSNetConfig(**obj["net_config"])
        net = MLRSNet(config, gamma=obj["gamma"])
        net.load_state_dict(obj["state_dict"])
    except (KeyError, TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} does not match the MLR-SNet architecture ({first}); "
            "it was written by an incompatible version or edited by hand"
        ) from None
    meta = {k: v for k, v in obj.items() if k not in ("state_dict",)}
    return net, meta
