"""The task registry: the built-in tasks, and tasks other installed packages provide.

Built-in tasks are the sub-packages of ``whipnb.tasks`` with a ``TASK`` object.
Any installed distribution can add its own through the entry-point group
``whipnb.tasks``, so a course can ship exercises without touching whipnb::

    [project.entry-points."whipnb.tasks"]
    nan_loss = "mycourse.nan_loss:TASK"

An entry point names a :class:`Task` instance or a :class:`Task` subclass (made
with no arguments).  A plugin that fails to load, or that names something else,
is left out with a clear reason (:func:`task_problems`, ``whipnb tasks``, and
the error for its name); it never hides the other tasks.

Nothing here imports torch: a task's grading code is imported on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType

from whipnb.tasks.base import Task

#: The entry-point group other packages register their tasks in.
ENTRY_POINT_GROUP = "whipnb.tasks"
_NUMBERED = re.compile(r"task(\d+)")


class UnknownTaskError(KeyError):
    """Raised for a task name that no task package defines."""

    def __str__(self) -> str:
        name = self.args[0]
        problem = task_problems().get(name)
        if problem:
            return f"task {name!r} could not be loaded: {problem}"
        return f"unknown task {name!r}; known tasks: {', '.join(all_tasks())}"


@dataclass(frozen=True)
class _Registry:
    """The tasks found, read-only once built (a submission cannot swap one for the next)."""

    tasks: Mapping[str, Task]
    #: Plugin tasks left out, by entry-point name: why, in plain words.
    problems: Mapping[str, str]


def task_order(task_id: str) -> tuple[int, int, str]:
    """Sort key: ``task1``, ``task2``, ... in numeric order, then every other name
    alphabetically (so ``task10`` follows ``task9`` and ``nan_loss`` breaks nothing)."""
    numbered = _NUMBERED.fullmatch(task_id)
    return (0, int(numbered.group(1)), "") if numbered else (1, 0, task_id)


@cache
def _registry() -> _Registry:
    tasks: dict[str, Task] = {}
    problems: dict[str, str] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.ispkg:
            module = importlib.import_module(f"{__name__}.{module_info.name}")
            task = getattr(module, "TASK", None)
            if isinstance(task, Task):
                tasks[task.id] = task
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        _add_plugin(tasks, problems, entry_point)
    ordered = dict(sorted(tasks.items(), key=lambda item: task_order(item[0])))
    return _Registry(MappingProxyType(ordered), MappingProxyType(problems))


def _add_plugin(tasks: dict[str, Task], problems: dict[str, str], entry_point: EntryPoint) -> None:
    """Load one plugin task; a failure is recorded as a problem, never raised."""
    origin = f"entry point {entry_point.name!r} ({entry_point.value})"
    try:
        loaded = entry_point.load()
        task = loaded() if isinstance(loaded, type) and issubclass(loaded, Task) else loaded
    except Exception as error:  # a broken plugin must not hide the other tasks
        problems[entry_point.name] = f"{origin} failed to load: {type(error).__name__}: {error}"
        return
    if not isinstance(task, Task):
        problems[entry_point.name] = (
            f"{origin} is a {type(task).__name__}, not a whipnb.tasks.Task or a subclass of it"
        )
        return
    problem = _invalid(task)
    if not problem and task.id in tasks:
        problem = f"its task id {task.id!r} is already taken by {type(tasks[task.id])}"
    if problem:
        problems[entry_point.name] = f"{origin}: {problem}"
        return
    tasks[task.id] = task


def _invalid(task: Task) -> str:
    """What keeps a plugin task from being graded, or ``""``."""
    missing = [name for name in ("id", "title", "rows") if not getattr(task, name, None)]
    if missing:
        return f"the task defines no {', '.join(missing)}"
    if not isinstance(task.id, str) or not re.fullmatch(r"[A-Za-z_][\w.-]*", task.id):
        return f"its task id {task.id!r} is not a single word (letters, digits, _ . -)"
    return ""


def all_tasks() -> dict[str, Task]:
    """Every task that loaded, by id, in :func:`task_order`."""
    return dict(_registry().tasks)


def task_problems() -> dict[str, str]:
    """Plugin tasks that could not be loaded, by entry-point name, with the reason."""
    return dict(_registry().problems)


def reload_tasks() -> None:
    """Forget the registry, so that tasks installed since are found (tests, notebooks)."""
    _registry.cache_clear()


def get_task(task_id: str) -> Task:
    try:
        return _registry().tasks[task_id.strip()]
    except KeyError:
        raise UnknownTaskError(task_id.strip()) from None


__all__ = [
    "ENTRY_POINT_GROUP",
    "Task",
    "UnknownTaskError",
    "all_tasks",
    "get_task",
    "reload_tasks",
    "task_order",
    "task_problems",
]
