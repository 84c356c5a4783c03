"""The debugging environment for coding agents, with WhipStudio's episodes.

``reset(task_id, seed)`` opens an episode: the observation holds its
``episode_id``, the task's description, the buggy script, the tools and the turn
budget.  ``step(action)`` carries out one action of that episode and returns an
observation with ``reward`` (None for a tool call, the grade for a submission)
and ``done``.  An episode ends with ``submit_fix`` or when its turn budget is
spent; a bad action (unknown type, missing fields, unknown episode, after the
end) gets an observation whose ``error`` says what is wrong, never an exception.

Episodes are independent objects, each with its own lock, so many run at once
(the HTTP server calls one environment from many threads).  The seed fixes
every RNG the agent's code draws from in the tools, so the same seed and the
same actions give the same observations; the reward never depends on it (the
grader seeds its own runs, as ``whipnb grade`` does).
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from whipnb.agent.actions import TOOLS, Action, BadAction, parse_action
from whipnb.agent.grader import Grader
from whipnb.agent.tools import ToolRunner
from whipnb.core.result import Result
from whipnb.tasks import UnknownTaskError, all_tasks, get_task

#: WhipStudio's turn budget: tool calls and the submission together.
MAX_TURNS = 10
#: WhipStudio counted a submission scoring this much as a success.
SUCCESS_SCORE = 0.7
#: Finished episodes kept for ``state`` before the oldest are forgotten.
KEEP_FINISHED = 1000


@dataclass
class Episode:
    episode_id: str
    task_id: str
    seed: int
    max_turns: int
    turn: int = 0
    done: bool = False
    reward: float | None = None
    #: Why it ended: "submitted" or "out_of_turns".
    ended: str = ""
    actions: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def state(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "task_id": self.task_id,
            "seed": self.seed,
            "turn": self.turn,
            "max_turns": self.max_turns,
            "turns_left": self.max_turns - self.turn,
            "done": self.done,
            "reward": self.reward,
            "ended": self.ended,
            "actions": list(self.actions),
        }


class DebugEnvironment:
    """Episodes over the six tasks; tools in sandboxed processes, submissions graded
    by a :class:`~whipnb.agent.grader.Grader` (made on first need if none is given)."""

    def __init__(
        self,
        grader: Grader | None = None,
        tools: ToolRunner | None = None,
        max_turns: int = MAX_TURNS,
    ) -> None:
        self.tools = tools or ToolRunner()
        self.max_turns = max_turns
        self._grader = grader
        self._owns_grader = grader is None
        self._episodes: OrderedDict[str, Episode] = OrderedDict()
        self._lock = threading.Lock()

    def __enter__(self) -> DebugEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def grader(self) -> Grader:
        with self._lock:
            if self._grader is None:
                self._grader = Grader(kernels_ahead=1)
            return self._grader

    def reset(
        self, task_id: str = "task1", seed: int | None = None, episode_id: str | None = None
    ) -> dict[str, Any]:
        """Open an episode; an unknown task or a taken id gives an error observation."""
        try:
            task = get_task(str(task_id))
        except UnknownTaskError as error:
            return error_observation(str(error), done=True)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32
        ):  # NumPy's seeds: 0 to 2**32 - 1
            return error_observation(f"seed must be an integer 0 to 2**32-1, not {seed!r}", True)
        episode = Episode(episode_id or uuid.uuid4().hex, task.id, seed or 0, self.max_turns)
        with self._lock:
            if episode.episode_id in self._episodes:
                message = f"episode {episode.episode_id!r} exists already"
                return error_observation(message, done=True)
            self._episodes[episode.episode_id] = episode
            self._forget_old()
        return {
            **self._common(episode),
            "task_description": task.description,
            "buggy_code": task.buggy_source,
            "tools": [tool.spec() for tool in TOOLS.values()],
            "title": task.title,
            "difficulty": task.difficulty,
            "targets": dict(task.targets),
            "error": None,
        }

    def step(self, action: Any) -> dict[str, Any]:
        """Carry out one action; a bad one gets an observation with ``error``."""
        given = action.get("episode_id") if isinstance(action, dict) else None
        episode = self._find(given)
        if given is not None and episode is None:
            return error_observation(f"unknown episode_id {given!r}: call reset first", True)
        try:
            parsed = parse_action(action)
        except BadAction as error:
            if episode is None:
                return error_observation(str(error))
            with episode.lock:
                return self._refuse(episode, str(error), action.get("action_type"))
        assert episode is not None  # parse_action requires an episode_id
        with episode.lock:
            if episode.done:
                return self._after_end(episode)
            return self._take(episode, parsed)

    def state(self, episode_id: str) -> dict[str, Any] | None:
        episode = self._find(episode_id)
        if episode is None:
            return None
        with episode.lock:
            return episode.state()

    def tasks(self) -> list[dict[str, Any]]:
        return [
            {"id": task.id, "title": task.title, "difficulty": task.difficulty}
            for task in all_tasks().values()
        ]

    def close(self) -> None:
        if self._owns_grader and self._grader is not None:
            self._grader.close()

    def _find(self, episode_id: Any) -> Episode | None:
        with self._lock:
            return self._episodes.get(episode_id) if isinstance(episode_id, str) else None

    def _forget_old(self) -> None:
        finished = [key for key, episode in self._episodes.items() if episode.done]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._episodes[key]

    def _take(self, episode: Episode, action: Action) -> dict[str, Any]:
        episode.turn += 1
        episode.actions.append(action.tool.name)
        if action.tool.terminal:
            return self._submit(episode, action)
        task = get_task(episode.task_id)
        fields = self.tools.run(
            action.tool.name, action.fields, buggy_code=task.buggy_source, seed=episode.seed
        )
        fields.setdefault("error", None)
        self._spend_turn(episode)
        return jsonable({**self._common(episode), "action_type": action.tool.name, **fields})

    def _submit(self, episode: Episode, action: Action) -> dict[str, Any]:
        result = self.grader.grade(episode.task_id, action.fields["fixed_code"])
        episode.done, episode.reward, episode.ended = True, result.score, "submitted"
        return {
            **self._common(episode),
            "action_type": "submit_fix",
            "error": None,
            "success": result.score >= SUCCESS_SCORE,
            "grader_details": grader_details(result),
            "explanation": action.fields["explanation"],
        }

    def _spend_turn(self, episode: Episode) -> None:
        """The last turn spent without a submission ends the episode, with nothing earned."""
        if episode.turn >= episode.max_turns and not episode.done:
            episode.done, episode.reward, episode.ended = True, 0.0, "out_of_turns"

    def _refuse(self, episode: Episode, message: str, kind: Any) -> dict[str, Any]:
        """A malformed action on a live episode: it costs a turn (a looping agent still
        reaches the budget), earns nothing and changes nothing else."""
        if episode.done:
            return self._after_end(episode)
        episode.turn += 1
        episode.actions.append(str(kind))
        self._spend_turn(episode)
        return {**self._common(episode), "action_type": kind, "error": message}

    def _after_end(self, episode: Episode) -> dict[str, Any]:
        why = (
            f"the turn budget of {episode.max_turns} turns is used up"
            if episode.ended == "out_of_turns"
            else "a fix was submitted"
        )
        message = f"episode {episode.episode_id} is over ({why}): call reset for a new one"
        return {**self._common(episode), "error": message, "reward": None}

    def _common(self, episode: Episode) -> dict[str, Any]:
        return {
            "episode_id": episode.episode_id,
            "task_id": episode.task_id,
            "turn": episode.turn,
            "max_turns": episode.max_turns,
            "turns_left": episode.max_turns - episode.turn,
            "done": episode.done,
            "episode_done": episode.done,
            "reward": episode.reward if episode.done else None,
        }


def error_observation(message: str, done: bool = False) -> dict[str, Any]:
    """An observation for an action that belongs to no episode."""
    return {"error": message, "reward": None, "done": done, "episode_done": done}


def grader_details(result: Result) -> dict[str, Any]:
    """What the grader found, as ``whipnb grade --json`` records it (findings included)."""
    bundle = result.to_bundle()
    keys = ("task", "score", "band", "status", "rubric_row", "checks", "metrics", "message")
    details = {key: bundle.get(key) for key in keys}
    details["findings"] = findings(result)
    details["tampering"] = bundle.get("tampering", [])
    return jsonable(details)


def findings(result: Result) -> str:
    """The checks in plain lines, as a learner's panel lists them."""
    lines = [f"{'PASS' if c.passed else 'FAIL'} {c.title}: {c.detail}" for c in result.checks]
    if result.message:
        lines.insert(0, result.message)
    return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """Strict JSON: NaN and infinities become strings ("nan", "inf", "-inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value
