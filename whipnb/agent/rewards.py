"""A reward function for TRL's GRPO trainer: each completion graded like ``whipnb grade``.

TRL calls a reward function with keyword arguments: ``prompts``,
``completions`` (strings, or lists of chat messages), ``completion_ids``,
``trainer_state`` and every column of the dataset (here ``task_id``, one per
completion, or one for all); it wants one float per completion.
:class:`GRPOReward` takes the code from the last fenced Python block of each
completion and grades them all at once on a :class:`~whipnb.agent.grader.Grader`
(warm kernels, ``jobs`` in parallel).  The reward is the score, so it equals what
``whipnb grade`` gives a notebook holding that code; a completion without code
scores 0.

Usage::

    from whipnb.agent.rewards import GRPOReward
    reward = GRPOReward(jobs=2)
    trainer = GRPOTrainer(model, reward_funcs=[reward], train_dataset=dataset, ...)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from whipnb.agent.grader import Grader
from whipnb.core.result import Result

#: A fenced block: its info string (the language, if any) and its body.
FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.M | re.S)
PYTHON_TAGS = {"python", "py", "python3", "ipython", "py3"}


def completion_text(completion: Any) -> str:
    """The text of a completion as TRL passes it: a string, or chat messages (the last
    assistant message's content, itself a string or a list of text parts)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, Sequence):
        messages = [m for m in completion if isinstance(m, dict)]
        replies = [m for m in messages if m.get("role", "assistant") == "assistant"]
        if replies:
            return _content(replies[-1].get("content"))
    return ""


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return ""


def extract_code(text: str) -> str | None:
    """The last fenced Python block (```` ```python ````, ```` ```py ````...); failing that,
    the last untagged fenced block; None when there is no fenced code at all."""
    blocks = [(tag.lower(), body) for _fence, tag, body in FENCE.findall(text)]
    tagged = [body for tag, body in blocks if tag in PYTHON_TAGS]
    plain = [body for tag, body in blocks if not tag]
    found = tagged or plain
    return found[-1] if found else None


class GRPOReward:
    """``reward(completions, task_id, **kwargs) -> list[float]``, grading in parallel.

    Keeps one :class:`Grader` (and its warm kernels) for its whole life; close it
    when training ends.  ``last_results`` holds the full results of the latest call
    (checks and findings), for logging.
    """

    def __init__(self, grader: Grader | None = None, *, jobs: int | None = None) -> None:
        self._grader = grader or Grader(jobs=jobs)
        self._owns_grader = grader is None
        self.last_results: list[Result] = []
        #: TRL names each reward function in its logs by ``__name__``.
        self.__name__ = "whipnb_reward"

    def __enter__(self) -> GRPOReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(
        self, completions: Sequence[Any], task_id: str | Sequence[str], **kwargs: Any
    ) -> list[float]:
        tasks = [task_id] * len(completions) if isinstance(task_id, str) else list(task_id)
        if len(tasks) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(tasks)} task ids")
        codes = [extract_code(completion_text(completion)) for completion in completions]
        self.last_results = self._grader.grade_many(list(zip(tasks, codes, strict=True)))
        return [result.score for result in self.last_results]

    def close(self) -> None:
        if self._owns_grader:
            self._grader.close()
