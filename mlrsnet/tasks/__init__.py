"""Tasks: ``build_task(task_cfg, seed, device)``; dataset builders register themselves (and their config
class) on import."""

from mlrsnet.tasks import llm, mnist, nmf, offline, paper, snn  # noqa: F401  (register every dataset builder)
from mlrsnet.tasks.base import ClassificationTask, LanguageModelTask, Task, TaskConfig, TaskInfo
from mlrsnet.tasks.registry import available_datasets, build_task, parse_task, register_dataset, task_config

__all__ = [
    "ClassificationTask", "LanguageModelTask", "Task", "TaskConfig", "TaskInfo", "available_datasets", "build_task",
    "parse_task", "register_dataset", "task_config",
]
