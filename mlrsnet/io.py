"""Atomic, versioned files: what every layer above writes its results and checkpoints with.

A file is written to a temporary name in the target directory and renamed into place, so a crash never
leaves a half-written file. A versioned torch payload (:func:`save` / :func:`load`) carries ``format``,
``schema_version`` and ``kind``; loading checks all three and turns every failure into a one-line
:class:`~mlrsnet.errors.CheckpointError`. The kinds are the callers' own names (``mlrsnet``,
``run_state``, ``rl_policy``...): this module knows none of them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from mlrsnet.errors import CheckpointError

__all__ = ["FORMAT", "SCHEMA_VERSION", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "check_header",
           "file_sha256", "load", "read_torch", "save"]

FORMAT = "mlrsnet"
SCHEMA_VERSION = 1


def _umask() -> int:
    """The process umask (reading it means setting it: put it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``.

    The file gets the permissions of a plain ``open(path, "w")``, ``0o666 & ~umask`` (``tempfile.mkstemp``
    makes it owner-only, which would hide results from collaborators on a shared file system). On any
    failure (a full disk...) the temporary file is removed and ``path`` keeps its previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o666 & ~_umask())
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
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "schema_version": SCHEMA_VERSION, "kind": kind, **payload}, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_torch(path: Path, map_location: str | torch.device) -> Any:
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a file; pass the .pt file in it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass checkpoint=PATH to an existing .pt file")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises many types for truncated / foreign files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a torch file ({type(e).__name__}); "
            "re-create it with python -m mlrsnet.train"
        ) from None


def load(path: str | os.PathLike, kind: str, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate a checkpoint of ``kind``; every failure is a one-line CheckpointError."""
    path = Path(path)
    obj = read_torch(path, map_location)
    return check_header(obj, path, kind)


def check_header(obj: Any, path: Path, kind: str | tuple[str, ...]) -> dict:
    kinds = (kind,) if isinstance(kind, str) else kind
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mlrsnet checkpoint (no 'format: {FORMAT}' header)")
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has schema version {version}, this mlrsnet reads version {SCHEMA_VERSION}; "
            "re-create it with this version of python -m mlrsnet.train"
        )
    if obj.get("kind") not in kinds:
        raise CheckpointError(f"checkpoint {path} holds a {obj.get('kind')!r}, expected a "
                              f"{' or '.join(repr(k) for k in kinds)} checkpoint")
    return obj


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, recorded beside every result that used it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


