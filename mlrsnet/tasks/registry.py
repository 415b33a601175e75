"""Dataset-builder registry: a task config's ``dataset`` names the builder that turns it into a Task."""

from __future__ import annotations

from collections.abc import Callable

import torch

from mlrsnet.errors import ConfigError
from mlrsnet.tasks.base import Task

Builder = Callable[[dict, int, torch.device], Task]
_DATASETS: dict[str, Builder] = {}


def register_dataset(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} registered twice")
        _DATASETS[name] = fn
        return fn

    return deco


def available_datasets() -> list[str]:
    return sorted(_DATASETS)


def build_task(cfg: dict, seed: int, device: str | torch.device = "cpu") -> Task:
    """Build the task described by a task config (the ``task`` section of the Hydra config)."""
    name = cfg.get("dataset")
    if name not in _DATASETS:
        raise ConfigError(
            f"unknown dataset {name!r} in task {cfg.get('name')!r}; available: {', '.join(available_datasets())}"
        )
    return _DATASETS[name](cfg, int(seed), torch.device(device))
