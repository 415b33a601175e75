"""Run outputs: metrics.jsonl (flushed as it comes), summary.json, resolved config and environment.

Optional wandb mirroring is in :class:`WandbSink` (``logger=wandb``; off by default, works with
``WANDB_MODE=offline``); the local files are always written, whatever the logger.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from mlrsnet.errors import ConfigError
from mlrsnet.io import atomic_write_json, atomic_write_text

_PACKAGES = ("torch", "numpy", "higher", "hydra-core", "omegaconf", "scikit-learn", "mlrsnet")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# What a run's numbers depend on: a local change to one of these makes the commit ``-dirty``. Results a
# script rewrites (experiments' Markdown, CSV, figures and run records) and the docs do not.
CODE_PATHSPECS = ("mlrsnet", "conf", "checkpoints", "pyproject.toml", "experiments/**/*.py", "benchmarks/**/*.py")


def git_commit(src: Path | None = None) -> str:
    """The commit of the mlrsnet source tree (or of the checkout holding ``src``), with ``-dirty`` if a
    tracked file it runs (``CODE_PATHSPECS``, Markdown excepted) has local changes; ``unknown`` outside a
    git checkout (e.g. a wheel install)."""
    src = Path(__file__).resolve().parent if src is None else src
    # "." is the package's own directory, wherever the checkout holds it
    specs = [".", *(f":(top,glob){p}" if "*" in p else f":(top){p}" for p in CODE_PATHSPECS)]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *specs, ":(top,glob,exclude)**/*.md"],
            cwd=src, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# Environment variables that set how many threads the numerical libraries use, or that SLURM sets for a job.
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SLURM_CPUS_PER_TASK", "SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID",
                "SLURM_RESTART_COUNT")


def threads_info() -> dict[str, Any]:
    """What decides a run's CPU parallelism, and so its last digits: torch's intra- and inter-op thread
    counts, the CPUs this process may run on (affinity), the machine's CPU count and the relevant
    environment variables (null where unset)."""
    import torch

    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_affinity": affinity,
        "cpu_count": os.cpu_count(),
        "env": {name: os.environ.get(name) for name in _THREAD_VARS},
    }


# The variables that cap the instruction set of torch's own kernels (ATen), MKL's and oneDNN's; set to
# PIN_AVX2 before Python starts, a run takes the same kernels on any x86-64 CPU with AVX2 (README, "Reproducing a
# run bit for bit"). MKL_CBWR (MKL's conditional numerical reproducibility) is recorded too where set.
PIN_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
_ISA_VARS = (*PIN_AVX2, "MKL_CBWR")
_SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
               "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_info(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> dict[str, Any]:
    """Which CPU a run ran on, the other half of its last digits: the same seed, code, packages and threads
    give the same numbers on the same kind of CPU, but torch, MKL and oneDNN pick their vectorised kernels by
    the CPU's instruction set (``torch_capability``: DEFAULT, AVX2, AVX512, ...; ``simd_flags``: what the CPU
    offers), so another CPU may differ in the last digits unless both runs cap the instruction set alike:
    ``isa_env`` records the variables that do (null where unset), ``pinned_avx2`` whether they held
    :data:`PIN_AVX2`, and ``reproduce`` the environment a rerun elsewhere needs to take these kernels (empty where
    only the same kind of CPU can). ``model`` is the name ``cpuinfo`` gives the CPU (else the platform's; null
    where neither says)."""
    import torch

    model, flags = None, set()
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and model is None:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa_env = {name: os.environ.get(name) for name in _ISA_VARS}
    pinned = all((isa_env[k] or "").lower() == v.lower() for k, v in PIN_AVX2.items())
    return {"model": model or platform.processor() or None, "machine": platform.machine(),
            "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "simd_flags": sorted(flags & set(_SIMD_FLAGS)), "isa_env": isa_env, "pinned_avx2": pinned,
            "reproduce": " ".join(f"{k}={v}" for k, v in PIN_AVX2.items()) if pinned else "",
            "mkl": torch.backends.mkl.is_available(), "mkldnn": torch.backends.mkldnn.is_available()}


def environment() -> dict[str, Any]:
    """What a run ran on, written to environment.json beside its results: package versions, the git
    commit, the platform, the command line, :func:`threads_info` and :func:`cpu_info`."""
    return {
        "versions": package_versions(),
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "threads": threads_info(),
        "cpu": cpu_info(),
    }


class RunLogger:
    """Writes a run directory. ``log`` appends one JSON line and flushes immediately.

    ``resume_at`` (a byte length returned by :meth:`position` when the run was checkpointed) continues
    an existing ``metrics.jsonl``: lines written after that point, by the part of the run that is being
    redone, are cut off, so a resumed run has no duplicate records.
    """

    def __init__(
        self, run_dir: str | os.PathLike, config_yaml: str | None = None, resume_at: int | None = None
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.sinks: list[Any] = []
        path = self.run_dir / "metrics.jsonl"
        if resume_at is not None and path.exists():
            os.truncate(path, min(resume_at, path.stat().st_size))
        else:
            path.write_bytes(b"")
        # Append mode: every write lands at the end, also after rewind() cut the file back.
        self._metrics = open(path, "a", encoding="utf-8")  # noqa: SIM115
        if config_yaml is not None:
            atomic_write_text(self.run_dir / "config.yaml", config_yaml)
        atomic_write_json(self.run_dir / "environment.json", environment())

    def position(self) -> int:
        """Bytes of metrics.jsonl written so far (everything logged is flushed)."""
        return os.fstat(self._metrics.fileno()).st_size

    def rewind(self, position: int) -> None:
        """Cut metrics.jsonl back to ``position`` bytes (a rolled-back stretch of training)."""
        self._metrics.flush()
        os.truncate(self._metrics.fileno(), position)

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

    def artifact(self, path: str | os.PathLike, name: str, kind: str) -> None:
        """Hand a finished file (e.g. the learned MLR-SNet) to the sinks that store files."""
        for sink in self.sinks:
            sink.artifact(Path(path), name, kind)

    def image(self, key: str, path: str | os.PathLike) -> None:
        """Hand a PNG (e.g. the LR curve) to the sinks that show images."""
        for sink in self.sinks:
            sink.image(key, Path(path))

    def close(self) -> None:
        self._metrics.close()
        for sink in self.sinks:
            sink.close()


class WandbSink:
    """Mirrors a run to Weights & Biases: the resolved config, per-step LR and loss (``train/*``
    against ``iteration``), per-epoch records (``epoch/*`` against ``epoch``), the summary, the LR
    curve as an image and the learned MLR-SNet as a ``model`` artifact.

    ``wandb`` is imported here only, so it is never loaded with ``logger=none``. ``mode`` null follows
    ``WANDB_MODE`` (``offline`` works without an account or network); ``dir`` null follows
    ``WANDB_DIR``, else the run directory. ``run_id`` continues an earlier wandb run (resume).
    """

    def __init__(self, run_dir: Path, config: dict[str, Any], options: dict[str, Any],
                 run_id: str | None = None) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError(
                "logger=wandb needs the wandb package; pip install wandb, or use logger=none"
            ) from None
        wandb_dir = options.get("dir") or os.environ.get("WANDB_DIR") or str(run_dir)
        Path(wandb_dir).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=options.get("project") or "mlrsnet", entity=options.get("entity"),
            group=options.get("group"), tags=list(options.get("tags") or []), name=options.get("run_name"),
            mode=options.get("mode"), dir=wandb_dir, config=config, id=run_id,
            resume="allow" if run_id else None,
        )
        self.id: str = self.run.id
        self._wandb = wandb
        self.run.define_metric("iteration")
        self.run.define_metric("train/*", step_metric="iteration")
        self.run.define_metric("epoch")
        self.run.define_metric("epoch/*", step_metric="epoch")

    def log(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind == "step":
            self.run.log({"iteration": record["step"], "train/lr": record["lr"],
                          "train/loss": record["loss"]})
        elif kind == "epoch":
            self.run.log({"epoch": record["epoch"], **{
                f"epoch/{k}": v for k, v in record.items()
                if k not in ("type", "epoch") and isinstance(v, (int, float))
            }})

    def summary(self, summary: dict[str, Any]) -> None:
        self.run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})

    def artifact(self, path: Path, name: str, kind: str) -> None:
        art = self._wandb.Artifact(name, type=kind)
        art.add_file(str(path))
        self.run.log_artifact(art)

    def image(self, key: str, path: Path) -> None:
        self.run.log({key: self._wandb.Image(str(path))})

    def close(self) -> None:
        self.run.finish()


class TensorBoardSink:
    """Mirrors a run to TensorBoard (``logger=tensorboard``; files in ``<run dir>/tensorboard`` or ``logger.dir``):
    per step the LR and the loss (``train/*``, against the iteration), per epoch every numeric record
    (``epoch/*``, against the epoch), the LR curve as an image, and at the end the hyperparameters (the config,
    flattened) with the final metrics (TensorBoard's HParams view). ``resume_step`` continues a resumed run: the
    events after that iteration, written by the part being redone, are discarded."""

    def __init__(self, run_dir: Path, config: dict[str, Any], options: dict[str, Any],
                 resume_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("logger=tensorboard needs the tensorboard package; pip install 'mlrsnet[tensorboard]', "
                              "or use logger=none") from None
        self.config = config
        self.writer = SummaryWriter(log_dir=str(options.get("dir") or Path(run_dir) / "tensorboard"),
                                    purge_step=resume_step)

    def log(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind == "step":
            self.writer.add_scalar("train/lr", record["lr"], record["step"])
            self.writer.add_scalar("train/loss", record["loss"], record["step"])
        elif kind == "epoch":
            for k, v in record.items():
                if k not in ("type", "epoch") and isinstance(v, int | float) and not isinstance(v, bool):
                    self.writer.add_scalar(f"epoch/{k}", v, record["epoch"])

    def summary(self, summary: dict[str, Any]) -> None:
        hparams = {k: v if isinstance(v, int | float | str | bool) else str(v)
                   for k, v in _flatten(self.config).items() if v is not None}
        metrics = {f"hparam/{k}": v for k, v in summary.items()
                   if k.startswith(("final_", "best_")) and isinstance(v, int | float) and not isinstance(v, bool)}
        self.writer.add_hparams(hparams, metrics, run_name=".")

    def artifact(self, path: Path, name: str, kind: str) -> None:
        """TensorBoard keeps no files: the artifact stays in the run directory."""

    def image(self, key: str, path: Path) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as img:
            self.writer.add_image(key, np.asarray(img.convert("RGB")), dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}."))
    return out


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


def dump_config(cfg: dict) -> str:
    """The resolved config as YAML, as written to ``config.yaml`` beside a run's results."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(cfg))


def csv_text(rows: list[dict], columns: Sequence[str]) -> str:
    """``rows`` as CSV text with exactly ``columns`` (a missing value is empty), for result tables."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: r.get(k) for k in columns} for r in rows)
    return buf.getvalue()
