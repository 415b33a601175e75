"""Run outputs: metrics.jsonl (flushed as it comes), summary.json, resolved config and environment.

Optional wandb mirroring is in :class:`WandbSink`; local files are always written.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from mlrsnet.checkpoint import atomic_write_json, atomic_write_text

_PACKAGES = ("torch", "numpy", "higher", "hydra-core", "omegaconf", "scikit-learn", "mlrsnet")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str:
    """The commit of the mlrsnet source tree, with ``-dirty`` if it has local changes; ``unknown``
    outside a git checkout (e.g. a wheel install)."""
    src = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=src, capture_output=True, text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, Any]:
    return {
        "versions": package_versions(),
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "argv": sys.argv,
    }


class RunLogger:
    """Writes a run directory. ``log`` appends one JSON line and flushes immediately."""

    def __init__(self, run_dir: str | os.PathLike, config_yaml: str | None = None, resume: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.sinks: list[Any] = []
        self._metrics = open(self.run_dir / "metrics.jsonl", "a" if resume else "w", encoding="utf-8")  # noqa: SIM115
        if config_yaml is not None:
            atomic_write_text(self.run_dir / "config.yaml", config_yaml)
        atomic_write_json(self.run_dir / "environment.json", environment())

    def log(self, record: dict[str, Any]) -> None:
        self._metrics.write(json.dumps(record, default=float) + "\n")
        self._metrics.flush()
        for sink in self.sinks:
            sink.log(record)

    def log_many(self, records: list[dict[str, Any]]) -> None:
        self._metrics.write("".join(json.dumps(r, default=float) + "\n" for r in records))
        self._metrics.flush()
        for sink in self.sinks:
            for r in records:
                sink.log(r)

    def summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.run_dir / "summary.json", summary)
        for sink in self.sinks:
            sink.summary(summary)

    def close(self) -> None:
        self._metrics.close()
        for sink in self.sinks:
            sink.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl file (a torn last line from a killed run is ignored)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out
