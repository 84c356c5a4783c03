"""Helpers for the finding tests (``test_findings_task*.py``): grade a submission once
and measure facts about the same run independently of the grader.

A submission is graded with a few lines appended that print ``FACTS:`` and a JSON
object computed by the test's own code in the learner's namespace (the grader
ignores unknown printed lines), so the numbers a finding states can be compared
with what that very run did, without a second run.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import textwrap
from dataclasses import dataclass
from typing import Any

from whipnb import Result, grade_source
from whipnb.tasks import get_task

FACTS = "FACTS:"


@dataclass(frozen=True)
class Graded:
    """A graded submission and the facts measured in its namespace after it ran."""

    result: Result
    facts: dict[str, Any]

    def check(self, check_id: str):
        return next(c for c in self.result.checks if c.id == check_id)

    @property
    def row_key(self) -> str:
        """The key of the rubric row the grader chose (matched by its condition text)."""
        task = get_task(self.result.task)
        key = getattr(self.result, "row_key", "") or getattr(self.result, "rubric_key", "")
        if key:
            return key
        return next(row.key for row in task.rows if row.condition == self.result.rubric_row)


def with_facts(source: str, facts: str) -> str:
    """``source`` followed by ``facts``: code that binds a dict ``facts`` (reading the
    script's names), run in a function so that it binds nothing in the namespace the
    grader reads, and printed as one JSON line.  The script is the body of a ``try``,
    so its crash is still graded as one and the facts are still measured."""
    body = textwrap.indent(source, "    ")
    measure = textwrap.indent(textwrap.dedent(facts).strip("\n"), "        ")
    return (
        f"try:\n{body}\nfinally:\n"
        f"    def _measure_facts():\n"
        f"        try:\n{textwrap.indent(measure, '    ')}\n"
        f"        except Exception as error:\n"
        f"            facts = {{'facts_error': repr(error)}}\n"
        f"        return facts\n"
        f"    print({FACTS!r} + __import__('json').dumps(_measure_facts(), default=float))\n"
        f"    del _measure_facts\n"
    )


def grade_with_facts(task_id: str, source: str, facts: str = "facts = {}") -> Graded:
    """Grade ``source`` (plus the facts code) once; prints stay off the log."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        result = grade_source(task_id, with_facts(source, facts), diagnosis=True)
    lines = [line for line in out.getvalue().splitlines() if line.startswith(FACTS)]
    return Graded(result, json.loads(lines[-1][len(FACTS) :]) if lines else {})


def numbers(text: str) -> list[float]:
    """Every number written in ``text`` (thousands separators and percent signs allowed)."""
    return [float(n.replace(",", "")) for n in re.findall(r"-?\d[\d,]*\.?\d*(?:e-?\d+)?", text)]


def in_range(result: Result, low: float, high: float) -> bool:
    return low <= result.score <= high
