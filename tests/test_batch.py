"""Course-scale grading (issue 4), through the real command line.

One batch mixes valid task 1 submissions with every kind of unusable file, an
endless loop, a memory bomb, dying kernels and a learner's helper process;
then a grader interrupted (SIGINT) and killed (SIGKILL) mid-batch is re-run
until the batch is complete.  Every kernel the tests start carries a marker in
its environment, so "no process left behind" is checked on exactly those.
"""

from __future__ import annotations

import csv
import html
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from class_inputs import graded_notebook, snapshot, valid_bodies, write_class
from helpers import grade_quietly
from processes import MARK, marked_environment, marked_processes, wait_until_gone

from whipnb.gradebook.exports import safe_name
from whipnb.gradebook.store import grader_id

#: The endless loop costs this much, while the other kernel grades the rest;
#: valid task 1 submissions need a few seconds.
TIMEOUT_S = 45
#: A task 1 kernel holds about 400 MB; the bomb passes this within a second.
MEMORY_MB = 1024
#: Generous bounds on a loaded machine; what they bound takes about a second.
PROMPT_EXIT_S = 20
ORPHAN_GRACE_S = 10


def whipnb(*args: object) -> list[str]:
    return [sys.executable, "-m", "whipnb", *map(str, args)]


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start a grader that takes SIGINT as a terminal's Ctrl-C, even where this test
    runs with SIGINT ignored (a disposition children would inherit)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    finally:
        signal.signal(signal.SIGINT, previous)


def gradings_in(db: Path) -> list[tuple[str, str, float]]:
    """(learner, content hash, score) of every grading the gradebook holds."""
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=30) as connection:
        return connection.execute(
            "SELECT learner, content_hash, score FROM gradings ORDER BY id"
        ).fetchall()


def wait_for_gradings(db: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300
    while len(gradings_in(db)) < count:
        assert process.poll() is None, f"the grader ended early:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, "no grading was recorded in time"
        time.sleep(0.2)


def wait_for_settled_kernel(mark: str, process: subprocess.Popen[str]) -> None:
    """Until a kernel of this grader has run for a while: past its start-up, when
    ipykernel's watch on its parent process is running (a kernel orphaned while
    still starting relies on being re-parented to init instead)."""
    deadline = time.monotonic() + 300
    while not any(settled_kernel(process) for process in marked_processes(mark)):
        assert process.poll() is None, "the grader ended before a kernel settled"
        assert time.monotonic() < deadline, "no kernel started"
        time.sleep(0.2)


def grading_code() -> str:
    """The grader's fingerprint for task 1 as the files are now (not the cached one)."""
    return grader_id.__wrapped__("task1")


def require_unchanged_code(*fingerprints: str) -> None:
    """Reuse needs the same grading code in every run; in a working tree being edited
    while the test runs it may not be: that is a reason to skip, not a failure."""
    if len(set(fingerprints)) > 1:
        pytest.skip("whipnb's grading code changed while the test ran")


def settled_kernel(process: psutil.Process) -> bool:
    try:
        kernel = "ipykernel" in " ".join(process.cmdline())
        return kernel and time.time() - process.create_time() > 1.5
    except psutil.NoSuchProcess:
        return False


# --- one batch, every kind of submission ---------------------------------------------------


@pytest.fixture(scope="module")
def class_batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    submissions = folder / "submissions"
    expected = write_class(submissions)
    before = snapshot(submissions)
    env = marked_environment()
    paths = {name: folder / name for name in ("gradebook.sqlite", "grades.json", "grades.csv")}
    code = grading_code()
    started = time.monotonic()
    finished = subprocess.run(
        whipnb(
            "grade", submissions, "--jobs", 2, "--timeout", TIMEOUT_S, "--memory-mb", MEMORY_MB,
            "--db", paths["gradebook.sqlite"], "--json", paths["grades.json"],
            "--csv", paths["grades.csv"],
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    return {
        "folder": folder,
        "submissions": submissions,
        "expected": expected,
        "before": before,
        "env": env,
        "process": finished,
        "elapsed": time.monotonic() - started,
        "code": code,
        **paths,
    }


@pytest.fixture(scope="module")
def records(class_batch):
    assert class_batch["process"].returncode == 0, class_batch["process"].stdout
    loaded = json.loads(class_batch["grades.json"].read_text())
    return {Path(record["path"]).name: record for record in loaded}


def test_every_submission_gets_exactly_one_record(class_batch, records):
    loaded = json.loads(class_batch["grades.json"].read_text())
    names = Counter(Path(record["path"]).name for record in loaded)
    assert names == Counter(list(class_batch["expected"]))
    with open(class_batch["grades.csv"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert Counter(Path(row["path"]).name for row in rows) == names
    contract = {"path", "task", "score", "band", "status", "checks", "metrics", "message"}
    for record in loaded:
        assert contract | {"duration_s", "learner", "content_hash"} <= set(record)
        assert record["sandbox"] == "bwrap"  # the default: every kernel in bubblewrap


def test_each_record_has_the_right_status_and_message(class_batch, records):
    for name, expected in class_batch["expected"].items():
        record = records[name]
        assert record["status"] == expected.status, (name, record["message"])
        if expected.status != "graded":
            assert expected.words in record["message"], (name, record["message"])
            assert record["score"] == 0.0 and record["band"] == "Failed"
            continue
        assert expected.low <= record["score"] <= expected.high, (name, record["score"])
        if expected.words:
            runs = next(check for check in record["checks"] if check["id"] == "runs")
            assert not runs["passed"] and expected.words in runs["detail"], runs


def test_the_limits_stopped_what_they_should(records):
    assert records["loop_task1.ipynb"]["duration_s"] >= TIMEOUT_S
    assert f"{TIMEOUT_S} s" in records["loop_task1.ipynb"]["message"]
    assert f"{MEMORY_MB} MB" in records["bomb_task1.ipynb"]["message"]
    # Everything else finished on its own, far inside the limit.
    assert records["alice_task1.ipynb"]["duration_s"] < TIMEOUT_S


def test_learners_are_named_from_the_file_names(records):
    assert records["alice_task1.ipynb"]["learner"] == "alice"
    assert records["unreadable_task1.ipynb"]["learner"] == "unreadable"
    # A file name with a byte that is not UTF-8 (caf\xe9): stored with the byte escaped.
    assert records["caf\\xe9_task1.ipynb"]["learner"] == "caf\\xe9"


def test_valid_submissions_score_as_they_do_alone(records):
    for name, (body, _) in valid_bodies().items():
        alone = grade_quietly("task1", body)
        assert records[name]["score"] == alone.score, name
        assert records[name]["status"] == alone.status


def test_no_process_is_left_behind(class_batch):
    # The kernels and the helper process a learner started in its own session.
    assert marked_processes(class_batch["env"][MARK]) == []


def test_inputs_are_byte_identical_afterwards(class_batch, records):
    assert snapshot(class_batch["submissions"]) == class_batch["before"]


def test_the_gradebook_holds_every_grading(class_batch, records):
    rows = gradings_in(class_batch["gradebook.sqlite"])
    assert len(rows) == len(class_batch["expected"])
    assert {learner for learner, _, _ in rows} == {r["learner"] for r in records.values()}


# --- interrupted, killed, resumed ------------------------------------------------------------


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """The valid submissions graded one at a time by a grader that is interrupted
    (SIGINT) after its first result, killed (SIGKILL) after its next, then run again."""
    folder = tmp_path_factory.mktemp("resumed")
    submissions = folder / "submissions"
    submissions.mkdir()
    for name, (body, _) in valid_bodies().items():
        graded_notebook(submissions / name, body)
    db, out = folder / "gradebook.sqlite", folder / "grades.json"
    command = whipnb("grade", submissions, "--jobs", 1, "--db", db)
    env = marked_environment()
    facts = {"code_before": grading_code()}

    interrupted = start(command, env)
    wait_for_gradings(db, 1, interrupted)
    interrupted.send_signal(signal.SIGINT)
    sent = time.monotonic()
    facts["interrupt_output"] = interrupted.communicate(timeout=120)[0]
    facts["interrupt_exit_s"] = time.monotonic() - sent
    facts["interrupt_code"] = interrupted.returncode
    facts["left_after_interrupt"] = marked_processes(env[MARK])
    facts["after_interrupt"] = gradings_in(db)

    killed = start(command, env)
    wait_for_gradings(db, len(facts["after_interrupt"]) + 1, killed)
    wait_for_settled_kernel(env[MARK], killed)
    killed.kill()
    killed.communicate(timeout=60)
    facts["left_after_kill"] = wait_until_gone(env[MARK], ORPHAN_GRACE_S)
    facts["after_kill"] = gradings_in(db)

    final = subprocess.run(
        [*command, "--json", out], env=env, capture_output=True, text=True, timeout=600
    )
    facts["final"] = final
    facts["records"] = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    facts["gradings"] = gradings_in(db)
    facts["left_at_end"] = marked_processes(env[MARK])
    facts["code_after"] = grading_code()
    return facts


def test_an_interrupted_grader_exits_promptly_and_keeps_what_finished(resumed):
    assert resumed["interrupt_code"] == 130, resumed["interrupt_output"]
    assert resumed["interrupt_exit_s"] < PROMPT_EXIT_S
    assert "run the same command again" in resumed["interrupt_output"]
    assert 1 <= len(resumed["after_interrupt"]) < len(valid_bodies())
    assert resumed["left_after_interrupt"] == []


def test_a_killed_grader_leaves_no_kernel_behind(resumed):
    assert resumed["left_after_kill"] == []
    assert len(resumed["after_kill"]) > len(resumed["after_interrupt"])


def test_the_rerun_finishes_without_regrading_finished_submissions(resumed):
    assert resumed["final"].returncode == 0, resumed["final"].stdout
    assert set(resumed["records"]) == set(valid_bodies())
    assert resumed["left_at_end"] == []
    require_unchanged_code(resumed["code_before"], resumed["code_after"])
    graded_before = {learner for learner, _, _ in resumed["after_kill"]}
    for record in resumed["records"].values():
        assert record["reused"] == (record["learner"] in graded_before)
    # Every submission graded exactly once over the three runs: the kills lost
    # only the grading in flight, which was never recorded.
    assert Counter(h for _, h, _ in resumed["gradings"]) == Counter(
        r["content_hash"] for r in resumed["records"].values()
    )


def test_one_and_two_jobs_give_identical_scores(class_batch, resumed, records):
    require_unchanged_code(class_batch["code"], resumed["code_before"], resumed["code_after"])
    one_job = {name: record["score"] for name, record in resumed["records"].items()}
    two_jobs = {name: records[name]["score"] for name in one_job}
    assert one_job == two_jobs


# --- exports of the batch, parsed back ---------------------------------------------------------


def test_every_export_is_produced_and_parsed_back(class_batch, records, tmp_path):
    from gradescope import assert_gradescope_results

    from whipnb.cli import main

    db = class_batch["gradebook.sqlite"]
    files = {name: tmp_path / name for name in ("long.csv", "wide.csv", "all.json", "report.html")}
    gradescope = tmp_path / "gradescope"
    assert (
        main(
            ["export", "--db", str(db), "--csv-long", str(files["long.csv"]),
             "--csv-wide", str(files["wide.csv"]), "--json", str(files["all.json"]),
             "--gradescope", str(gradescope), "--points", "10",
             "--test-visibility", "after_published"]
        )
        == 0
    )  # fmt: skip
    by_learner = {record["learner"]: record for record in records.values()}

    with open(files["long.csv"], newline="", encoding="utf-8") as handle:
        long_rows = list(csv.DictReader(handle))
    assert {r["learner"]: (r["task"], float(r["score"]), r["status"]) for r in long_rows} == {
        who: (r["task"], r["score"], r["status"]) for who, r in by_learner.items()
    }

    with open(files["wide.csv"], newline="", encoding="utf-8") as handle:
        wide = list(csv.DictReader(handle))
    header = list(wide[0])
    assert header[:2] == ["learner", "task1"] and header[-2:] == ["total", "chosen"]
    assert all(column.startswith("task1:") for column in header[2:-2])
    # Which learner missed which check: 1 passed, 0 not (a record without checks: all 0).
    for row in wide:
        passed = {c["id"]: c["passed"] for c in by_learner[row["learner"]]["checks"]}
        assert {c: row[c] for c in header[2:-2]} == {
            c: str(int(passed.get(c.removeprefix("task1:"), False))) for c in header[2:-2]
        }
    assert {row["learner"]: float(row["total"]) for row in wide} == {
        learner: r["score"] for learner, r in by_learner.items()
    }

    exported = {r["learner"]: r for r in json.loads(files["all.json"].read_text())}
    for learner, record in by_learner.items():
        for key in ("path", "task", "score", "band", "status", "checks", "metrics", "message"):
            assert exported[learner][key] == record[key], (learner, key)

    results = sorted(gradescope.glob("*/results.json"))
    # One folder per learner, named so any file system takes it (caf\xe9 -> caf_xe9).
    folders = {safe_name(learner): learner for learner in by_learner}
    assert [path.parent.name for path in results] == sorted(folders)
    for path in results:
        document = json.loads(path.read_text())
        assert_gradescope_results(document)
        record = by_learner[folders[path.parent.name]]
        assert document["score"] == pytest.approx(10 * record["score"])
        checks = [test for test in document["tests"] if "." in test["number"]]
        assert len(checks) == len(record["checks"])
        assert all(test["visibility"] == "after_published" for test in checks)

    assert main(["report", "--db", str(db), "--output", str(files["report.html"])]) == 0
    page = html.unescape(files["report.html"].read_text())
    assert "data:image/png;base64," in page
    for record in records.values():
        if record["status"] != "graded":
            assert record["message"] in page
    for check in records["alice_task1.ipynb"]["checks"]:
        assert check["title"] in page


# --- the same batch again ---------------------------------------------------------------------


def test_a_second_run_reuses_the_gradebook(class_batch, records):
    """Nothing changed: every record comes from the gradebook, no kernel starts; only
    the files that are not read (no content to recognise: a dangling link, a FIFO, a
    link out of the folder) are recorded again."""
    out = class_batch["folder"] / "again.json"
    again = subprocess.run(
        whipnb(
            "grade", class_batch["submissions"], "--timeout", TIMEOUT_S,
            "--memory-mb", MEMORY_MB, "--db", class_batch["gradebook.sqlite"],
            "--json", out, "--quiet",
        ),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout
    require_unchanged_code(class_batch["code"], grading_code())
    second = {Path(record["path"]).name: record for record in json.loads(out.read_text())}
    unread = ["fifo_task1.ipynb", "unreadable_task1.ipynb", "zero_task1.ipynb"]
    assert sorted(name for name, record in second.items() if not record["reused"]) == unread
    assert {n: r["score"] for n, r in second.items()} == {n: r["score"] for n, r in records.items()}
    assert len(gradings_in(class_batch["gradebook.sqlite"])) == len(records) + len(unread)
