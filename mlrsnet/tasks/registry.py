"""Dataset-builder registry: a task config's ``dataset`` names the builder that turns it into a Task, and the
config class (a :class:`~mlrsnet.tasks.base.TaskConfig`) that builder reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from mlrsnet.errors import ConfigError
from mlrsnet.tasks.base import Task, TaskConfig
from mlrsnet.typed import defaults, parse

__all__ = ["available_datasets", "build_task", "parse_task", "register_task_configs", "register_dataset", "task_config"]

Builder = Callable[[Any, int, torch.device], Task]
_DATASETS: dict[str, tuple[type[TaskConfig], Builder]] = {}


def register_dataset(name: str, config: type[TaskConfig]) -> Callable[[Builder], Builder]:
    """Register ``builder(cfg, seed, device)`` for ``dataset: name``; ``cfg`` is a ``config`` object."""

    def deco(fn: Builder) -> Builder:
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} registered twice")
        _DATASETS[name] = (config, fn)
        return fn

    return deco


def available_datasets() -> list[str]:
    return sorted(_DATASETS)


def task_config(dataset: Any, task_name: Any = None) -> type[TaskConfig]:
    """The config class of ``dataset``; an unknown one is a one-line error."""
    if not isinstance(dataset, str) or dataset not in _DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r} in task {task_name!r}; available: "
                          f"{', '.join(available_datasets())}")
    return _DATASETS[dataset][0]


def parse_task(cfg: dict, prefix: str = "task.") -> TaskConfig:
    """A ``task`` section (a mapping) as its dataset's typed config (:func:`mlrsnet.typed.parse`)."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{prefix.rstrip('.')} must be a mapping of keys to values, got {cfg!r}")
    return parse(task_config(cfg.get("dataset"), cfg.get("name")), cfg, prefix)


def build_task(cfg: TaskConfig | dict, seed: int, device: str | torch.device = "cpu") -> Task:
    """Build the task a task config describes (a typed config, or a mapping parsed by :func:`parse_task`)."""
    if not isinstance(cfg, TaskConfig):
        cfg = parse_task(cfg)
    task_config(cfg.dataset, cfg.name)
    return _DATASETS[cfg.dataset][1](cfg, int(seed), torch.device(device))


def register_task_configs() -> None:
    """Store each dataset's defaults in Hydra's ConfigStore as ``task_schema/<dataset>``: a task file composes it
    into its ``task`` section (``defaults: [/task_schema/digits@task, _self_]``), so that every key of the
    dataset's config can be set on the command line."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, (config, _) in _DATASETS.items():
        node = {k: v for k, v in defaults(config).items() if v != "???"}
        store.store(group="task_schema", name=name, node={**node, "dataset": name})
