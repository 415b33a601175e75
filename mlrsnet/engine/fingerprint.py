"""Which config keys change a run's numbers, and a run's fingerprint: the one place that knows.

- :data:`NEUTRAL`: how a run is shown, logged and saved, and where its data lives. They never change a number,
  so they are left out of a fingerprint, may change when a run resumes, and do not name a sweep's job
  directories (Hydra's ``override_dirname``).
- :data:`MACHINE`: the device and the thread count. They change only the last digits (the CPU's or GPU's
  kernels), so a run may resume on another machine; they are part of a fingerprint.
- :data:`COMMAND`: what a command runs (a benchmark's schedules, seeds and tuning grid; an ensemble's pool):
  not how any one run trains, so left out of each run's fingerprint.

A fingerprint is a short hash of the rest of a run's config (:func:`fingerprint`): a benchmark, an ensemble
and a suite reuse a finished run whose fingerprint matches, and never a run whose does not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

__all__ = ["COMMAND", "MACHINE", "NEUTRAL", "RESUMABLE", "config_dict", "fingerprint", "result_keys"]

NEUTRAL = frozenset({"progress", "log_steps", "logger", "resume", "save_every", "snapshots", "copy_to_checkpoints",
                     "checkpoints_dir", "data", "out_dir"})
MACHINE = frozenset({"device", "threads"})
COMMAND = frozenset({"schedules", "seeds", "lr_grid", "tune", "tune_epochs", "tune_seed", "target_metric", "select",
                     "select_params", "from_bench", "pool", "methods", "combiners", "max_team_size", "max_teams",
                     "greedy", "focal", "rl", "jobs"})
# May differ between a run and its resumption (a longer run continues; the guard may be loosened to get past a
# divergence).
RESUMABLE = NEUTRAL | MACHINE | {"guard"}


def config_dict(cfg: Any) -> dict:
    """A typed config (or a mapping) as a plain, JSON-ready mapping."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    return json.loads(json.dumps(dict(cfg), default=str))


def result_keys(cfg: Any, drop: frozenset[str] = frozenset()) -> dict:
    """The part of a config that decides a run's numbers: everything but :data:`NEUTRAL`, :data:`COMMAND` and
    ``drop``."""
    skip = NEUTRAL | COMMAND | drop
    return {k: v for k, v in config_dict(cfg).items() if k not in skip}


def fingerprint(cfg: Any, drop: frozenset[str] = frozenset(), **run: Any) -> str:
    """A short hash of :func:`result_keys` of ``cfg`` and of ``run`` (what a command sets per run: the schedule,
    its parameters, the seed, the LR multiplier, the epochs...)."""
    payload = {"config": result_keys(cfg, drop), "run": run}
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
