"""An inspect_ai scorer: a model's answer graded like ``whipnb grade`` (``whipnb[inspect]``).

``whipnb_scorer()`` returns a scorer whose ``Score`` has ``value`` = the score in
[0, 1], ``answer`` = the code graded (the last fenced Python block of the
output), ``explanation`` = the grader's findings, and ``metadata`` = band,
status, rubric row and checks.  The task comes from the sample's metadata
(``task_id``), or from ``task_id=`` given here.  inspect_ai is imported only
when the scorer is made, so this module imports without it.

Usage::

    from inspect_ai import Task
    from inspect_ai.dataset import Sample
    from whipnb.agent.scorer import whipnb_scorer

    Task(dataset=[Sample(input=prompt, metadata={"task_id": "task1"})],
         solver=generate(), scorer=whipnb_scorer())
"""

from __future__ import annotations

import asyncio
import atexit
from typing import Any

from whipnb.agent.env import findings, jsonable
from whipnb.agent.grader import Grader
from whipnb.agent.rewards import extract_code


def whipnb_scorer(task_id: str | None = None, grader: Grader | None = None) -> Any:
    """The scorer; ``grader`` defaults to one made on first use (kept for the process)."""
    try:
        from inspect_ai.scorer import Score, mean, scorer, stderr
    except ImportError:
        raise ImportError(
            "the whipnb scorer needs inspect_ai: pip install 'whipnb[inspect]'"
        ) from None
    graders: list[Grader] = [grader] if grader is not None else []

    def get_grader() -> Grader:
        if not graders:
            graders.append(Grader())
            atexit.register(graders[0].close)  # no warm kernel outlives the evaluation
        return graders[0]

    @scorer(metrics=[mean(), stderr()])
    def whipnb() -> Any:
        async def score(state: Any, target: Any) -> Any:
            task = task_id or (state.metadata or {}).get("task_id")
            if not task:
                raise ValueError("no task: give whipnb_scorer(task_id=...) or metadata task_id")
            code = extract_code(state.output.completion)
            result = await asyncio.to_thread(get_grader().grade, task, code)
            return Score(
                value=result.score,
                answer=code or "",
                explanation=findings(result),
                metadata=jsonable(
                    {
                        "task": result.task,
                        "band": result.band,
                        "status": result.status,
                        "rubric_row": result.rubric_row,
                        "checks": [vars(check) for check in result.checks],
                        "tampering": list(result.tampering),
                    }
                ),
            )

        return score

    return whipnb()
