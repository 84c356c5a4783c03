"""The sandbox itself: what a sandboxed command sees, the refusal without bubblewrap, and
the same scores with and without it (the six solution notebooks, through the real CLI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from whipnb.cli import main
from whipnb.headless import sandbox
from whipnb.headless.kernels import sandbox_environment
from whipnb.headless.sandbox import (
    SANDBOX_HOME,
    Sandbox,
    SandboxFolder,
    UidLease,
    package_view,
    python_view,
)

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, os, socket
seen = {"uid": os.getuid(), "cwd": os.getcwd(), "pids": len([p for p in os.listdir('/proc')
        if p.isdigit()]), "env": sorted(os.environ), "home": os.path.expanduser('~'),
        "solution": len(open(os.path.join(os.path.dirname(__import__('whipnb').__file__),
        'tasks', 'task1', 'solution.py')).read()), "checkout": os.path.exists(%r)}
try:
    socket.create_connection(('1.1.1.1', 53), timeout=2); seen["net"] = "up"
except OSError as error:
    seen["net"] = error.strerror
open('written', 'w').write('x')
print(json.dumps(seen))
"""


def test_a_sandboxed_command_sees_only_its_view():
    with UidLease() as lease, SandboxFolder(lease.uid) as folder:
        view = package_view()
        box = Sandbox(
            work=folder.work,
            env=sandbox_environment({"WHIPNB_SECRET": "token", "PYTHONHASHSEED": "0"}),
            read_only=(*python_view(), *view.read_only),
            hidden=view.hidden,
            empty=folder.empty,
            uid=lease.uid,
        )
        probe = PROBE % str(ROOT / "solutions")
        run = subprocess.run(
            box.command([sys.executable, "-c", probe]), capture_output=True, text=True, check=False
        )
        assert run.returncode == 0, run.stderr
        seen = json.loads(run.stdout)
        assert (folder.work / "written").read_text() == "x"  # its one writable folder
    if os.geteuid() == 0:
        assert seen["uid"] != 0 and seen["uid"] == lease.uid
    assert seen["cwd"] == str(folder.work)
    assert seen["pids"] <= 3  # the sandbox's init and the command: no other process
    assert "WHIPNB_SECRET" not in seen["env"] and "PYTHONHASHSEED" in seen["env"]
    assert seen["home"] == SANDBOX_HOME
    assert seen["solution"] == 0  # the shipped reference solutions read empty
    assert seen["checkout"] is False  # the package alone, not its checkout
    assert seen["net"] == "Network is unreachable"


def test_read_only_folders_under_tmp_stay_visible(tmp_path):
    """A checkout or a venv under /tmp (a CI clone, say) must not vanish under the
    sandbox's own /tmp: the fresh file systems are laid first, the binds over them."""
    shared = tmp_path / "checkout"
    shared.mkdir()
    (shared / "module.py").write_text("VALUE = 42\n")
    shared.chmod(0o755)
    for parent in shared.parents:
        if parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o055)
    assert str(shared).startswith("/tmp/")
    with UidLease() as lease, SandboxFolder(lease.uid) as folder:
        box = Sandbox(
            work=folder.work,
            env=sandbox_environment({}),
            read_only=(*python_view(), shared),
            uid=lease.uid,
        )
        code = (
            f"import sys; sys.path.insert(0, {str(shared)!r}); import module; print(module.VALUE)"
        )
        run = subprocess.run(
            box.command([sys.executable, "-c", code]), capture_output=True, text=True, check=False
        )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "42"


def test_two_leases_never_share_a_uid():
    if os.geteuid() != 0:
        pytest.skip("only a root grader changes uid")
    with UidLease() as first, UidLease() as second:
        assert first.uid != second.uid


def test_without_bubblewrap_the_grader_refuses_and_names_the_way_out(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "BWRAP_PATH", str(tmp_path / "no-bwrap"))
    shutil.copy(ROOT / "solutions" / "task1.ipynb", tmp_path / "fixed.ipynb")
    db = tmp_path / "gradebook.sqlite"
    assert main(["grade", str(tmp_path / "fixed.ipynb"), "--db", str(db)]) == 2
    out = capsys.readouterr().out
    assert "bubblewrap is not installed" in out and "--sandbox none" in out
    assert not db.exists()  # nothing graded, nothing recorded


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory):
    """The six solution notebooks graded by the CLI in bubblewrap and without."""
    records = {}
    for mode in ("bwrap", "none"):
        folder = tmp_path_factory.mktemp(mode)
        out = folder / "grades.json"
        command = [sys.executable, "-m", "whipnb", "grade", str(ROOT / "solutions"), "--quiet"]
        command += ["--jobs", "2", "--db", str(folder / "db.sqlite"), "--json", str(out)]
        command += ["--secret", "one secret for both runs"]  # the outside_* metrics agree
        run = subprocess.run([*command, "--sandbox", mode], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-2000:]
        records[mode] = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    return records


def test_scores_are_identical_with_and_without_the_sandbox(both_ways):
    sandboxed, plain = both_ways["bwrap"], both_ways["none"]
    assert set(sandboxed) == set(plain) == {f"task{n}.ipynb" for n in range(1, 7)}
    for name, record in sandboxed.items():
        assert record["sandbox"] == "bwrap" and plain[name]["sandbox"] == "none"
        assert record["status"] == plain[name]["status"] == "graded", name
        assert record["score"] == plain[name]["score"], name
        assert record["score"] >= 0.85, name  # each reference fix: the seed's top band
        assert record["metrics"] == plain[name]["metrics"], name
