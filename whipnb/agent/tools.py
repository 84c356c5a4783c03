"""The five investigation tools, run for an episode; the sixth, ``submit_fix``, is
graded by :mod:`whipnb.agent.grader`.

Four of them run the agent's code in a sandboxed process
(:class:`~whipnb.agent.process.ProcessSandbox`, the inside is
:mod:`whipnb.agent.harness`); ``inspect_diff`` only compares text.  Each returns
the observation fields WhipStudio's clients read (``stdout``, ``stderr``,
``exit_code``, ``timed_out``, ``shape``, ``losses``, ``diff``...), plus what
whipnb's own probes say beyond them.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from whipnb.agent.process import Finished, ProcessLimits, ProcessSandbox


class ToolRunner:
    """Runs tools in sandboxed processes under one set of limits."""

    def __init__(
        self, sandbox: ProcessSandbox | None = None, limits: ProcessLimits | None = None
    ) -> None:
        self.sandbox = sandbox or ProcessSandbox()
        self.limits = limits or ProcessLimits()

    def run(self, tool: str, fields: dict[str, Any], *, buggy_code: str, seed: int) -> dict:
        """The observation fields of one tool call (never raises for the agent's code)."""
        if tool == "inspect_diff":
            return inspect_diff(buggy_code, fields["proposed_code"])
        request = {"tool": tool, "seed": seed, "timeout_s": self.limits.timeout_s, **fields}
        finished = self.sandbox.run(json.dumps(request), self.limits)
        return observed(tool, finished, self.limits)


def observed(tool: str, finished: Finished, limits: ProcessLimits) -> dict[str, Any]:
    """What a finished tool process tells the agent."""
    fields: dict[str, Any] = {
        "stdout": finished.stdout,
        "stderr": finished.stderr,
        "exit_code": finished.exit_code,
        "timed_out": finished.timed_out,
        "out_of_memory": finished.out_of_memory,
        "stdout_truncated": finished.stdout_truncated,
        "stderr_truncated": finished.stderr_truncated,
        "error": None,
    }
    if finished.timed_out:
        fields["error"] = f"stopped after {limits.timeout_s:g} s (an endless loop?)"
    elif finished.out_of_memory:
        fields["error"] = f"stopped past {limits.memory_mb} MB of memory"
    if tool == "execute_snippet":
        return fields
    try:
        measured = json.loads(finished.result) if finished.result else None
    except ValueError:
        measured = None
    if not isinstance(measured, dict):
        fields["error"] = fields["error"] or "the tool process ended before reporting (see stderr)"
        return fields
    if measured.get("error"):
        fields["error"] = measured["error"]
    return {**fields, **{key: value for key, value in measured.items() if key != "error"}}


def inspect_diff(buggy_code: str, proposed_code: str) -> dict[str, Any]:
    """Unified diff against the buggy script and how many lines it adds, removes, changes."""
    old, new = buggy_code.splitlines(), proposed_code.splitlines()
    diff = list(difflib.unified_diff(old, new, "buggy.py", "proposed.py", lineterm=""))
    added = sum(line.startswith("+") and not line.startswith("+++") for line in diff)
    removed = sum(line.startswith("-") and not line.startswith("---") for line in diff)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    changed = sum(
        max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"
    )
    return {
        "diff": "\n".join(diff),
        "lines_added": added,
        "lines_removed": removed,
        "lines_changed": changed,
        "identical": not diff,
    }
