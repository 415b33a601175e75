"""Tasks: ``build_task(task_cfg, seed, device)``; dataset builders register themselves on import."""

from mlrsnet.tasks import llm, nmf, offline, paper, snn  # noqa: F401  (register every dataset builder)
from mlrsnet.tasks.base import ClassificationTask, LanguageModelTask, Task, TaskInfo
from mlrsnet.tasks.registry import available_datasets, build_task, register_dataset

__all__ = [
    "ClassificationTask", "LanguageModelTask", "Task", "TaskInfo", "available_datasets", "build_task",
    "register_dataset",
]
