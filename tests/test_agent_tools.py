"""The agent's tools, attacked: each runs the agent's code in the bubblewrap sandbox
with a cleared environment, time and memory limits and capped output."""

from __future__ import annotations

import os

import psutil
import pytest

from whipnb.agent.actions import BadAction, parse_action
from whipnb.agent.process import ProcessLimits, ProcessSandbox
from whipnb.agent.tools import ToolRunner, inspect_diff
from whipnb.headless.sandbox import unavailable
from whipnb.tasks import get_task

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))
TASK5 = get_task("task5")


@pytest.fixture(scope="module")
def tools() -> ToolRunner:
    return ToolRunner(ProcessSandbox(), ProcessLimits(timeout_s=20, memory_mb=1024))


def snippet(tools: ToolRunner, code: str, seed: int = 0) -> dict:
    return tools.run("execute_snippet", {"code": code}, buggy_code="", seed=seed)


def test_snippet_reports_output_status_and_sees_nothing_of_the_server(
    tools: ToolRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHIPNB_SERVER_SECRET", "token-123")
    code = "\n".join(
        [
            "import os, socket, sys",
            "print(os.environ.get('WHIPNB_SERVER_SECRET'), os.getuid() == 0, os.listdir('.'))",
            f"print(os.path.exists({__file__!r}), os.listdir(os.environ['HOME']))",
            "try:",
            "    socket.create_connection(('1.1.1.1', 53), timeout=2); print('online')",
            "except OSError: print('offline')",
            "print(open(os.path.join(sys.prefix, 'pyvenv.cfg')).read() != '')",
            "try:",
            "    open(os.path.join(sys.prefix, 'planted.txt'), 'w')",
            "except OSError: print('read-only')",
            "sys.exit(3)",
        ]
    )
    seen = snippet(tools, code)
    assert seen["exit_code"] == 3 and seen["timed_out"] is False
    lines = seen["stdout"].splitlines()
    assert lines == ["None False []", "False []", "offline", "True", "read-only"], seen


def test_snippet_traceback_is_exit_status_one(tools: ToolRunner) -> None:
    seen = snippet(tools, "print('before')\n1 / 0")
    assert seen["exit_code"] == 1 and seen["stdout"] == "before\n"
    assert "ZeroDivisionError" in seen["stderr"]


def test_endless_loop_is_stopped_at_the_time_limit() -> None:
    runner = ToolRunner(limits=ProcessLimits(timeout_s=4))
    seen = snippet(runner, "print('start', flush=True)\nwhile True: pass")
    assert seen["timed_out"] is True and "stopped after 4 s" in seen["error"]
    assert seen["stdout"] == "start\n"


def test_memory_hog_is_stopped_at_the_memory_limit() -> None:
    runner = ToolRunner(limits=ProcessLimits(timeout_s=30, memory_mb=600))
    seen = snippet(runner, "import time\nblob = b'x' * (1500 * 2**20)\ntime.sleep(30)")
    assert seen["out_of_memory"] is True and seen["timed_out"] is False


def test_output_is_capped_and_the_flood_does_not_block(tools: ToolRunner) -> None:
    seen = snippet(tools, "import sys\nsys.stdout.write('x' * 5_000_000)\nprint('end')")
    assert seen["exit_code"] == 0 and seen["stdout_truncated"] is True
    assert len(seen["stdout"]) == tools.limits.output_cap


def test_nothing_outlives_the_call(tools: ToolRunner) -> None:
    code = (
        "import subprocess, time\n"
        "child = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "time.sleep(0.5)\n"
    )
    snippet(tools, code)
    mine = psutil.Process(os.getpid()).children(recursive=True)
    processes = psutil.process_iter(["cmdline"])
    sleepers = [p for p in processes if p.info["cmdline"] == ["sleep", "300"]]
    assert not [p for p in sleepers if p in mine] and not sleepers


def test_the_seed_fixes_the_agents_random_numbers(tools: ToolRunner) -> None:
    def stats(seed: int) -> dict:
        fields = {"setup_code": "import torch\nx = torch.randn(50)", "target_expression": "x"}
        return tools.run("inspect_tensor", fields, buggy_code="", seed=seed)

    first, again, other = stats(7), stats(7), stats(8)
    assert first["mean"] == again["mean"] and first["min"] == again["min"]
    assert first["mean"] != other["mean"]


def test_inspect_tensor_sees_nan_and_a_missing_grad(tools: ToolRunner) -> None:
    fields = {
        "setup_code": "import torch\nw = torch.ones(3, requires_grad=True)\n"
        "t = torch.tensor([1.0, float('nan'), float('inf'), -2.0])",
        "target_expression": "t",
    }
    seen = tools.run("inspect_tensor", fields, buggy_code="", seed=0)
    assert seen["is_nan"] is True and seen["is_inf"] is True
    assert (seen["min"], seen["max"], seen["mean"]) == (-2.0, 1.0, -0.5)  # of the finite values
    fields["target_expression"] = "w"
    weight = tools.run("inspect_tensor", fields, buggy_code="", seed=0)
    assert weight["requires_grad"] is True and weight["grad_is_none"] is True
    broken = tools.run("inspect_tensor", {**fields, "setup_code": "raise ValueError('no')"},
                       buggy_code="", seed=0)  # fmt: skip
    assert "the setup code raised ValueError: no" in broken["error"]


def test_training_probe_counts_task5s_frozen_parameters_in_the_optimizer(
    tools: ToolRunner,
) -> None:
    """Task 5's buggy script hands the optimizer every parameter, frozen ones included
    (the seed's bug): the probe shows more optimizer parameters than trainable ones."""
    fields = {"code": TASK5.buggy_source, "steps": 2}
    seen = tools.run("run_training_probe", fields, buggy_code="", seed=0)
    assert seen["error"] is None, seen["stderr"]
    assert seen["frozen_params_in_optimizer"] > 0
    assert seen["optimizer_param_count"] > seen["trainable_param_count"]
    assert len(seen["steps"]) == 2 and len(seen["losses"]) == 2
    frozen = [name for name, norms in seen["grad_norms"].items() if norms == [None, None]]
    assert frozen, seen["grad_norms"]


def test_variable_state_reports_each_expression_or_its_error(tools: ToolRunner) -> None:
    fields = {"setup_code": "import torch\nm = torch.nn.Linear(3, 1)\nxs = [1, 2]",
              "expressions": ["m", "xs", "undefined_name"]}  # fmt: skip
    seen = tools.run("get_variable_state", fields, buggy_code="", seed=0)
    module, items, missing = seen["variables"]
    assert module["type"] == "Linear" and module["parameters"] == 4
    assert items["repr"] == "[1, 2]" and items["len"] == 2
    assert "NameError" in missing["error"]


def test_inspect_diff_counts_lines() -> None:
    seen = inspect_diff("a = 1\nb = 2\nc = 3\n", "a = 1\nb = 20\nc = 3\nd = 4\n")
    assert (seen["lines_added"], seen["lines_removed"], seen["lines_changed"]) == (2, 1, 2)
    assert "-b = 2" in seen["diff"] and "+d = 4" in seen["diff"]
    assert inspect_diff("x = 1\n", "x = 1\n")["identical"] is True


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ([], "an action is a JSON object"),
        ({"action_type": None, "episode_id": "e"}, "unknown action_type None"),
        (
            {"action_type": "inspect_tensor", "episode_id": "e", "setup_code": ""},
            "needs the field 'target_expression'",
        ),  # fmt: skip
        (
            {"action_type": "run_training_probe", "episode_id": "e", "code": "", "steps": True},
            "must be a int",
        ),  # fmt: skip
        (
            {
                "action_type": "get_variable_state",
                "episode_id": "e",
                "setup_code": "",
                "expressions": [1],
            },
            "every expression must be a string",
        ),  # fmt: skip
        (
            {"action_type": "execute_snippet", "episode_id": "e", "code": "x" * 100_001},
            "longer than 100000",
        ),  # fmt: skip
    ],
)
def test_bad_actions_are_named(action: object, message: str) -> None:
    with pytest.raises(BadAction, match=message):
        parse_action(action)
