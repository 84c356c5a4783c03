"""The actions an agent may take: WhipStudio's six, their fields and their limits.

One polymorphic action, as WhipStudio had it: ``action_type`` names the tool
(or ``submit_fix``), ``episode_id`` the episode, and the tool's own fields sit
beside them.  :func:`parse_action` checks an action against :data:`TOOLS` and
says in plain words what is wrong with a bad one; it never raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Characters a code field may hold (a task's script is about 1,500).
MAX_CODE_CHARS = 100_000
MAX_EXPRESSIONS = 10
MAX_PROBE_STEPS = 10


@dataclass(frozen=True)
class Field:
    name: str
    kind: type
    description: str
    required: bool = True


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    fields: tuple[Field, ...]
    #: Ends the episode (a submission).
    terminal: bool = False

    def spec(self) -> dict[str, Any]:
        """The tool as ``GET /tools`` and the reset observation list it."""
        return {
            "name": self.name,
            "description": self.description,
            "terminal": self.terminal,
            "fields": {
                field.name: {
                    "type": field.kind.__name__,
                    "required": field.required,
                    "description": field.description,
                }
                for field in self.fields
            },
        }


_SETUP = Field("setup_code", str, "Python code run first, in a fresh process")
TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "execute_snippet",
            "Run Python code as a script in a sandboxed process: stdout, stderr, exit code, "
            "timed out or not.",
            (Field("code", str, "the Python code to run"),),
        ),
        Tool(
            "inspect_tensor",
            "Run setup code, then evaluate an expression: the tensor's shape, dtype, "
            "requires_grad, whether its grad is None, min/max/mean, NaN and Inf.",
            (_SETUP, Field("target_expression", str, "an expression giving a tensor")),
        ),
        Tool(
            "run_training_probe",
            "Run training code under whipnb's instrumentation for at most `steps` optimizer "
            "steps: every loss, per-parameter gradient norms at each step, the optimizer's "
            "parameter count against the trainable ones, whether each step found a fresh "
            "gradient, learning rates, how far each step moved the weights, NaN/Inf.",
            (
                Field("code", str, "the training code"),
                Field("steps", int, f"optimizer steps to record, 1 to {MAX_PROBE_STEPS}", False),
            ),
        ),
        Tool(
            "get_variable_state",
            "Run setup code, then report each expression's type, repr (capped), and for "
            "tensors, modules and optimizers their details.",
            (
                _SETUP,
                Field("expressions", list, f"up to {MAX_EXPRESSIONS} Python expressions"),
            ),
        ),
        Tool(
            "inspect_diff",
            "Unified diff of proposed code against the buggy script, with line counts "
            "(no code is run).",
            (Field("proposed_code", str, "the full proposed script"),),
        ),
        Tool(
            "submit_fix",
            "Submit the fixed script: it is graded exactly as `whipnb grade` grades it; the "
            "score is the reward and the episode ends.",
            (
                Field("fixed_code", str, "the full fixed script"),
                Field("explanation", str, "what was wrong and what you changed", False),
            ),
            terminal=True,
        ),
    )
}


class BadAction(ValueError):
    """An action that cannot be carried out; its message is the observation's error."""


@dataclass(frozen=True)
class Action:
    tool: Tool
    episode_id: str
    fields: dict[str, Any]


def parse_action(action: Any) -> Action:
    """The action, checked; raises :class:`BadAction` saying what is wrong."""
    if not isinstance(action, dict):
        raise BadAction(f"an action is a JSON object, not {type(action).__name__}")
    kind = action.get("action_type")
    if kind not in TOOLS:
        known = ", ".join(TOOLS)
        raise BadAction(f"unknown action_type {kind!r}; expected one of: {known}")
    episode_id = action.get("episode_id")
    if not isinstance(episode_id, str) or not episode_id:
        raise BadAction("the action has no episode_id (the one /reset returned)")
    tool = TOOLS[kind]
    return Action(tool, episode_id, {f.name: _field(tool, f, action) for f in tool.fields})


def _field(tool: Tool, field: Field, action: dict[str, Any]) -> Any:
    value = action.get(field.name)
    if value is None:
        if field.required:
            raise BadAction(f"{tool.name} needs the field {field.name!r}: {field.description}")
        return {"steps": MAX_PROBE_STEPS, "explanation": ""}[field.name]
    if field.kind is int and isinstance(value, bool) or not isinstance(value, field.kind):
        raise BadAction(
            f"{tool.name}: {field.name!r} must be a {field.kind.__name__}, "
            f"not {type(value).__name__}"
        )
    return _checked(tool, field, value)


def _checked(tool: Tool, field: Field, value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_CODE_CHARS:
        raise BadAction(f"{tool.name}: {field.name!r} is longer than {MAX_CODE_CHARS} characters")
    if field.name == "steps" and not 1 <= value <= MAX_PROBE_STEPS:
        raise BadAction(f"run_training_probe: steps must be 1 to {MAX_PROBE_STEPS}, not {value}")
    if field.name == "expressions":
        if not 1 <= len(value) <= MAX_EXPRESSIONS:
            raise BadAction(
                f"get_variable_state: give 1 to {MAX_EXPRESSIONS} expressions, not {len(value)}"
            )
        if not all(isinstance(item, str) for item in value):
            raise BadAction("get_variable_state: every expression must be a string")
    return value
