"""Rewards for training and evaluation: the TRL GRPO reward function grades a batch in
parallel with the scores ``whipnb grade`` gives the same code; the inspect_ai scorer."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from whipnb.agent.grader import Grader
from whipnb.agent.rewards import GRPOReward, completion_text, extract_code
from whipnb.agent.scorer import whipnb_scorer
from whipnb.headless.sandbox import unavailable
from whipnb.headless.submissions import find_graded_cell

ROOT = Path(__file__).resolve().parents[1]
needs_bwrap = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))


def test_code_is_the_last_fenced_python_block() -> None:
    text = (
        "First try:\n```python\nx = 1\n```\nOutput:\n```\nnot code\n```\n"
        "Final:\n```py\nx = 2\nprint(x)\n```\nDone."
    )
    assert extract_code(text) == "x = 2\nprint(x)\n"
    assert extract_code("Only prose, no code.") is None
    assert extract_code("```\nbare = True\n```") == "bare = True\n"
    assert extract_code("````python\nnested = '```'\n````") == "nested = '```'\n"


def test_completions_as_trl_passes_them() -> None:
    chat = [
        {"role": "user", "content": "fix it"},
        {"role": "assistant", "content": [{"type": "text", "text": "```python\ny = 3\n```"}]},
    ]
    assert extract_code(completion_text(chat)) == "y = 3\n"
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "user", "content": "no reply"}]) == ""


def graded_body(folder: str, task: str) -> str:
    notebook = nbformat.read(ROOT / folder / f"{task}.ipynb", as_version=4)
    return find_graded_cell(notebook).body


def cli_scores(paths: list[Path], tmp_path: Path) -> dict[str, float]:
    out = tmp_path / "records.json"
    command = [sys.executable, "-m", "whipnb", "grade", *map(str, paths), "--jobs", "2"]
    command += ["--json", str(out), "--quiet", "--db", str(tmp_path / "gradebook.sqlite")]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return {Path(record["path"]).resolve().as_posix(): record["score"]
            for record in json.loads(out.read_text())}  # fmt: skip


@pytest.fixture(scope="module")
def grader() -> Iterator[Grader]:
    with Grader(jobs=2) as shared:
        yield shared


@needs_bwrap
def test_24_completions_graded_in_parallel_score_as_the_cli(grader: Grader, tmp_path: Path) -> None:
    """Tasks 4 and 5 (the fastest to grade), solution and buggy script, six of each,
    as strings and as chat messages: every reward is what ``whipnb grade`` records."""
    notebooks = {
        (folder, task): ROOT / folder / f"{task}.ipynb"
        for folder in ("solutions", "notebooks")
        for task in ("task4", "task5")
    }
    expected = cli_scores(list(notebooks.values()), tmp_path)
    completions, task_ids, wanted = [], [], []
    for index in range(24):
        folder, task = list(notebooks)[index % 4]
        text = f"Here is the script.\n```python\n{graded_body(folder, task)}\n```\n"
        chat = [{"role": "assistant", "content": text}]
        completions.append(chat if index % 2 else text)
        task_ids.append(task)
        wanted.append(expected[notebooks[folder, task].resolve().as_posix()])
    reward = GRPOReward(grader)
    rewards = reward(prompts=["p"] * 24, completions=completions, task_id=task_ids)
    assert rewards == wanted
    for (folder, _task), score in zip(notebooks, wanted[:4], strict=True):
        # the reference fixes are Excellent; the buggy scripts far below
        assert score >= 0.9 if folder == "solutions" else score < 0.4
    assert reward.__name__ == "whipnb_reward"
    assert all(result.status == "graded" for result in reward.last_results)


def test_no_code_and_unknown_task_score_zero_without_a_kernel() -> None:
    with Grader(jobs=1, kernels_ahead=0, sandbox="none") as grader:
        reward = GRPOReward(grader)
        assert reward(["no code here"], task_id="task1") == [0.0]
        assert reward.last_results[0].status == "invalid"
        assert reward(["```python\nx = 1\n```"], task_id="task99") == [0.0]
        assert "unknown task" in reward.last_results[0].message
        with pytest.raises(ValueError, match="2 completions but 1 task ids"):
            reward(["a", "b"], task_id=["task1"])


def test_scorer_needs_inspect_ai_only_when_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "inspect_ai.scorer", None)
    with pytest.raises(ImportError, match=r"pip install 'whipnb\[inspect\]'"):
        whipnb_scorer()


@needs_bwrap
def test_inspect_ai_scorer_scores_like_the_grader(grader: Grader) -> None:
    """The scorer on a real inspect_ai TaskState (an eval() run would fetch a tokenizer
    from the network, which this machine has not)."""
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import Target
    from inspect_ai.solver import TaskState

    body = graded_body("solutions", "task5")
    answer = f"The optimizer held frozen parameters.\n```python\n{body}\n```"
    state = TaskState(
        model="mockllm/model",
        sample_id=1,
        epoch=1,
        input="Fix task 5.",
        messages=[],
        output=ModelOutput.from_content("mockllm/model", answer),
        metadata={"task_id": "task5"},
    )
    score = asyncio.run(whipnb_scorer(grader=grader)(state, Target("")))
    expected = grader.grade("task5", body)
    assert score.value == expected.score >= 0.9
    assert score.answer.strip() == body.strip()
    assert all(check.title in score.explanation for check in expected.checks)
    assert score.metadata["status"] == "graded"
