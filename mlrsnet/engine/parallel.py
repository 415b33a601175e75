"""Runs at a time: a command's independent runs (a benchmark's tuning candidates and seeds, a suite's trials)
as separate processes, with a well-kept library rather than a pool of our own: joblib's loky backend on this
machine, or a submitit job array on a SLURM cluster. Each run keeps its own run directory, lock, signals and
saved state (:mod:`mlrsnet.engine.runner`), so a killed batch resumes run by run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mlrsnet.errors import ConfigError

__all__ = ["run_jobs"]

T = TypeVar("T")


def run_jobs(fn: Callable[[T], Any], items: Sequence[T], jobs: int, launcher: str = "local",
             folder: str | Path | None = None, slurm: dict | None = None) -> list[Any]:
    """``[fn(item) for item in items]``, at most ``jobs`` at a time: in this process when ``jobs`` is 1 (or there
    is one item), as joblib (loky) worker processes otherwise; ``launcher="slurm"``: a submitit job array (its
    files in ``folder``; ``slurm``: submitit's parameters, e.g. ``slurm_partition``). An error in a run (a stop
    signal, a bad input) is raised here, after the runs in flight end."""
    if not items:
        return []
    if launcher == "slurm":
        try:
            import submitit
        except ImportError:
            raise ConfigError("launcher=slurm needs the [slurm] extra (submitit): pip install 'mlrsnet[slurm]'") \
                from None
        executor = submitit.AutoExecutor(folder=str(folder or "slurm"))
        executor.update_parameters(**{"timeout_min": 240, "cpus_per_task": 1, "slurm_array_parallelism": jobs,
                                      **(slurm or {})})
        return [job.result() for job in executor.map_array(fn, list(items))]
    if jobs <= 1 or len(items) == 1:
        return [fn(item) for item in items]
    from joblib import Parallel, delayed

    return list(Parallel(n_jobs=min(jobs, len(items)), backend="loky")(delayed(fn)(item) for item in items))
