"""The task registry: every sub-package with a ``TASK`` object is a task."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from whipnb.tasks.base import Task


class UnknownTaskError(KeyError):
    """Raised for a task name that no task package defines."""

    def __str__(self) -> str:
        return f"unknown task {self.args[0]!r}; known tasks: {', '.join(all_tasks())}"


@cache
def all_tasks() -> dict[str, Task]:
    found: dict[str, Task] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.ispkg:
            module = importlib.import_module(f"{__name__}.{module_info.name}")
            task = getattr(module, "TASK", None)
            if isinstance(task, Task):
                found[task.id] = task
    return dict(sorted(found.items(), key=lambda item: int(item[0].removeprefix("task"))))


def get_task(task_id: str) -> Task:
    try:
        return all_tasks()[task_id.strip()]
    except KeyError:
        raise UnknownTaskError(task_id) from None


__all__ = ["Task", "UnknownTaskError", "all_tasks", "get_task"]
