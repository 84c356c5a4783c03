"""The agent environment over HTTP: ``whipnb serve`` started as a real process on
127.0.0.1, driven with httpx as a WhipStudio client would drive it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from whipnb.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
TASK1 = get_task("task1")
SIX_TOOLS = {
    "execute_snippet",
    "inspect_tensor",
    "run_training_probe",
    "get_variable_state",
    "inspect_diff",
    "submit_fix",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[httpx.Client]:
    """``whipnb serve`` on a free loopback port, stopped (SIGTERM) after the module."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "whipnb", "serve", "--port", str(port), "--jobs", "1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=180)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "whipnb serve exited at start-up"
            assert time.monotonic() < deadline, "whipnb serve did not answer in 60 s"
            time.sleep(0.3)
        yield client
    finally:
        client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def reset(client: httpx.Client, **body: object) -> dict:
    response = client.post("/reset", json=body)
    assert response.status_code == 200
    return response.json()


def step(client: httpx.Client, **action: object) -> dict:
    response = client.post("/step", json={"action": action})
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"observation", "reward", "done"}
    return answer


def cli_score(notebook: Path, tmp_path: Path) -> float:
    """What ``whipnb grade`` records for a notebook."""
    out = tmp_path / "records.json"
    subprocess.run(
        [sys.executable, "-m", "whipnb", "grade", str(notebook), "--json", str(out), "--quiet"]
        + ["--db", str(tmp_path / "gradebook.sqlite")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={**os.environ},
    )
    (record,) = json.loads(out.read_text())
    return record["score"]


def test_full_episode_for_task1_earns_the_cli_score(server: httpx.Client, tmp_path: Path) -> None:
    start = reset(server, task_id="task1")
    observation = start["observation"]
    assert start["reward"] is None and start["done"] is False
    assert observation["buggy_code"] == TASK1.buggy_source
    assert observation["task_description"] == TASK1.description
    assert {tool["name"] for tool in observation["tools"]} == SIX_TOOLS
    assert observation["max_turns"] == 10 and observation["turn"] == 0
    episode = observation["episode_id"]

    # The buggy loop zeroes the gradients, then steps, then backpropagates: every
    # step finds no gradient, and nn.Linear's weight and bias are the optimizer's two.
    probe = step(
        server,
        action_type="run_training_probe",
        episode_id=episode,
        code=TASK1.buggy_source,
        steps=3,
    )
    assert probe["reward"] is None and probe["done"] is False
    seen = probe["observation"]
    assert seen["error"] is None, seen
    assert [s["found_gradient"] for s in seen["steps"]] == [False, False, False]
    assert seen["optimizer_param_count"] == 2
    assert seen["grad_norms"] == {"model.weight": [None] * 3, "model.bias": [None] * 3}

    setup = TASK1.buggy_source.split("criterion =")[0]
    tensor = step(
        server,
        action_type="inspect_tensor",
        episode_id=episode,
        setup_code=setup,
        target_expression="model.weight",
    )["observation"]
    assert tensor["shape"] == [2, 2] and tensor["dtype"] == "float32"
    assert tensor["requires_grad"] is True and tensor["grad_is_none"] is True
    assert tensor["is_nan"] is False and -1 <= tensor["min"] <= tensor["max"] <= 1

    diff = step(
        server, action_type="inspect_diff", episode_id=episode, proposed_code=TASK1.solution_source
    )["observation"]
    assert "-optimizer = torch.optim.SGD(model.parameters(), lr=10.0)" in diff["diff"]
    assert diff["lines_changed"] >= 2 and diff["turn"] == 3

    submitted = step(
        server,
        action_type="submit_fix",
        episode_id=episode,
        fixed_code=TASK1.solution_source,
        explanation="backward before step; lr 10 diverges",
    )
    expected = cli_score(ROOT / "solutions" / "task1.ipynb", tmp_path)
    assert submitted["done"] is True
    assert submitted["reward"] == expected
    assert submitted["reward"] >= 0.9  # the reference fix is Excellent (seed's top band)
    details = submitted["observation"]["grader_details"]
    assert details["status"] == "graded" and details["score"] == expected
    assert all(check["passed"] for check in details["checks"])
    assert submitted["observation"]["success"] is True

    state = server.get("/state", params={"episode_id": episode}).json()
    assert state["done"] is True and state["reward"] == expected
    assert state["actions"] == [
        "run_training_probe",
        "inspect_tensor",
        "inspect_diff",
        "submit_fix",
    ]
    after = step(server, action_type="inspect_diff", episode_id=episode, proposed_code="")
    assert "is over" in after["observation"]["error"] and after["reward"] is None


def test_bad_actions_get_error_observations(server: httpx.Client) -> None:
    episode = reset(server, task_id="task2")["observation"]["episode_id"]
    cases = {
        "unknown action_type": {"action_type": "rm_rf", "episode_id": episode},
        "needs the field 'code'": {"action_type": "execute_snippet", "episode_id": episode},
        "must be a str": {"action_type": "inspect_diff", "episode_id": episode, "proposed_code": 3},
        "steps must be 1 to 10": {
            "action_type": "run_training_probe",
            "episode_id": episode,
            "code": "pass",
            "steps": 11,
        },
        "1 to 10 expressions": {
            "action_type": "get_variable_state",
            "episode_id": episode,
            "setup_code": "",
            "expressions": ["1"] * 11,
        },
        "unknown episode_id": {"action_type": "inspect_diff", "episode_id": "nope"},
        "no episode_id": {"action_type": "inspect_diff", "proposed_code": ""},
    }
    for expected, action in cases.items():
        answer = step(server, **action)
        assert expected in answer["observation"]["error"], (expected, answer)
        assert answer["reward"] is None
    not_json = server.post("/step", content=b"{not json")
    assert not_json.status_code == 200 and "not JSON" in not_json.json()["observation"]["error"]
    no_action = server.post("/step", json={"episode_id": episode})
    assert "action" in no_action.json()["observation"]["error"]
    assert "seed must be an integer" in reset(server, seed=-1)["observation"]["error"]
    assert "seed must be an integer" in reset(server, seed="7")["observation"]["error"]
    unknown_task = reset(server, task_id="task99")
    assert "unknown task" in unknown_task["observation"]["error"] and unknown_task["done"]
    assert server.get("/state", params={"episode_id": "nope"}).status_code == 404


def test_turn_budget_ends_the_episode_with_nothing_earned(server: httpx.Client) -> None:
    episode = reset(server, task_id="task4")["observation"]["episode_id"]
    diff = {"action_type": "inspect_diff", "episode_id": episode, "proposed_code": "x = 1"}
    answers = [step(server, **diff) for _ in range(10)]
    assert [a["done"] for a in answers] == [False] * 9 + [True]
    assert answers[-1]["reward"] == 0.0
    past = step(server, **diff)
    assert "turn budget of 10 turns is used up" in past["observation"]["error"]
    assert past["reward"] is None


def test_descriptive_routes(server: httpx.Client) -> None:
    assert server.get("/health").json()["status"] == "healthy"
    tasks = server.get("/tasks").json()["tasks"]
    assert [task["id"] for task in tasks][:6] == [f"task{n}" for n in range(1, 7)]
    tools = server.get("/tools").json()["tools"]
    assert {tool["name"] for tool in tools} == SIX_TOOLS
    submit = next(tool for tool in tools if tool["name"] == "submit_fix")
    assert submit["terminal"] is True and submit["fields"]["fixed_code"]["required"] is True


def test_episodes_run_concurrently_and_independently(server: httpx.Client) -> None:
    """Twelve episodes stepped from twelve threads at once: each keeps its own turns;
    two of them, same seed, draw the same random numbers in simultaneous tool calls."""
    episodes = [reset(server, task_id="task3", seed=5)["observation"]["episode_id"]
                for _ in range(12)]  # fmt: skip
    tensor = {"setup_code": "import torch\nx = torch.randn(100)", "target_expression": "x"}

    def play(index: int) -> tuple[list[int], float | None]:
        episode = episodes[index]
        turns = [
            step(server, action_type="inspect_diff", episode_id=episode,
                 proposed_code=f"x = {n}")["observation"]["turn"]
            for n in range(3)
        ]  # fmt: skip
        mean = None
        if index < 2:
            seen = step(server, action_type="inspect_tensor", episode_id=episode, **tensor)
            mean = seen["observation"]["mean"]
        return turns, mean

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(play, range(12)))
    assert all(turns == [1, 2, 3] for turns, _mean in outcomes)
    first, second = outcomes[0][1], outcomes[1][1]
    assert first is not None and first == second
    states = [server.get("/state", params={"episode_id": e}).json() for e in episodes]
    assert [state["turn"] for state in states] == [4, 4] + [3] * 10
