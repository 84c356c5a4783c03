"""Issue 11's attack classes against the real command line, each graded in the sandbox.

One batch (``python -m whipnb grade`` in a subprocess, module-scoped) grades two
honest classmates beside one notebook per attack; each test then asserts that its
attack gained nothing and that classmates' grades, files and the machine are intact.
Attacks that read something report it the one way a learner can: as the message of
an exception they raise (it lands in their own record).  Minimal scripts: no attack
needs training, only the classmates train.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
from class_inputs import graded_notebook
from kernels import write_notebook

import whipnb
from whipnb.tasks import get_task

TOKEN = f"token-{uuid.uuid4().hex}"
#: In the command line of the daemon the escape attack leaves behind, if it survived.
DAEMON_MARK = f"daemon-{uuid.uuid4().hex}"
MEMORY_MB = 1024


def attacks(home: Path, peer: Path, db: Path, port: int) -> dict[str, str]:
    """File name -> graded body.  Paths the grader uses are written into the attacks
    (the strongest learner knows them); inside the sandbox none of them exists."""
    package = Path(whipnb.__file__).parent
    return {
        "gradebook_task1.ipynb": (
            "import glob, os, sqlite3\nfound = []\n"
            "for cmd in glob.glob('/proc/*/cmdline'):\n"
            "    try: found.append(open(cmd, 'rb').read().replace(b'\\0', b' ').decode())\n"
            "    except OSError: pass\n"
            f"db = {str(db)!r}\n"
            "try:\n"
            '    sqlite3.connect(db).executescript("CREATE TRIGGER zero AFTER INSERT ON gradings'
            ' BEGIN UPDATE gradings SET score = 0; END;")\n'
            "    found.append('WROTE')\n"
            "except Exception as error: found.append(type(error).__name__)\n"
            "raise ValueError('gradebook: ' + ' | '.join(f for f in found if '--db' in f"
            " or f in ('WROTE',)) + ' ' + str(os.path.exists(db)))\n"
        ),
        "package_task1.ipynb": (
            "import os, torch\nresults = []\n"
            f"for target in ({str(package / '__init__.py')!r}, torch.__file__):\n"
            "    try:\n"
            "        open(target, 'a').write('\\nraise SystemExit\\n'); results.append('WROTE')\n"
            "    except OSError as error: results.append(error.strerror)\n"
            "raise ValueError('package: ' + ', '.join(results))\n"
        ),
        "peers_task1.ipynb": (
            "results = []\n"
            "try: results.append(open(" + repr(str(peer)) + ").read()[:40])\n"
            "except OSError as error: results.append(error.strerror)\n"
            "try: open(" + repr(str(peer)) + ", 'w').write('{}'); results.append('WROTE')\n"
            "except OSError as error: results.append(error.strerror)\n"
            "raise ValueError('peers: ' + ', '.join(results))\n"
        ),
        "secrets_task1.ipynb": (
            "import os\nfound = [v for v in os.environ.values() if 'token-' in v]\n"
            f"for name in ({str(home / '.secret')!r}, os.path.expanduser('~/.secret')):\n"
            "    try: found.append(open(name).read())\n"
            "    except OSError as error: found.append(error.strerror)\n"
            "raise ValueError('secrets: ' + ', '.join(found))\n"
        ),
        "startup_task1.ipynb": (
            "import os\nwritten = []\n"
            f"for home in ({str(home)!r}, os.path.expanduser('~')):\n"
            "    folder = os.path.join(home, '.ipython', 'profile_default', 'startup')\n"
            "    try:\n"
            "        os.makedirs(folder, exist_ok=True)\n"
            "        open(os.path.join(folder, '00-zero.py'), 'w').write("
            "'import builtins; builtins.print = None')\n"
            "        written.append(home)\n"
            "    except OSError as error: written.append(error.strerror)\n"
            "raise ValueError('startup: ' + ', '.join(written))\n"
        ),
        "signals_task1.ipynb": (
            "import os, signal\nseen = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
            "for sig in (signal.SIGSTOP, signal.SIGKILL):\n"
            "    for pid in seen:\n"
            "        if pid != os.getpid():\n"
            "            try: os.kill(pid, sig)\n"
            "            except OSError: pass\n"
            "raise ValueError(f'signals: saw {len(seen)} processes')\n"
        ),
        "siblings_task1.ipynb": (
            "import glob, os\n"
            "def connection_files(pid):\n"
            "    try: words = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n"
            "    except OSError: return set()\n"
            "    return {w for w in words if w.endswith(b'.json')}\n"
            "own = connection_files('self')\n"
            "others = set()\n"
            "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    others |= connection_files(pid) - own\n"
            "here = os.path.dirname(os.getcwd())\n"
            "others |= {p for p in glob.glob('/tmp/whipnb-*') if p != here}\n"
            "others |= set(glob.glob('/root/.local/share/jupyter/runtime/*'))\n"
            "raise ValueError(f'siblings: {len(others)} found')\n"
        ),
        "escape_task1.ipynb": (
            "import os, subprocess, sys, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    subprocess.Popen([sys.executable, '-c', 'import time; hoard = bytearray(900 *"
            f' 2**20); hoard[::4096] = b"x" * len(hoard[::4096]); time.sleep(600)\','
            f" {DAEMON_MARK!r}], start_new_session=True)\n"
            "    os._exit(0)\n"
            "time.sleep(30)\n"
        ),
        "network_task1.ipynb": (
            "import socket\nresults = []\n"
            f"for address in (('127.0.0.1', {port}), ('1.1.1.1', 53)):\n"
            "    try: socket.create_connection(address, timeout=3); results.append('CONNECTED')\n"
            "    except OSError as error: results.append(error.strerror or str(error))\n"
            "raise ValueError('network: ' + ', '.join(results))\n"
        ),
        "copier_task1.ipynb": (
            "import os, whipnb\n"
            "exec(open(os.path.join(os.path.dirname(whipnb.__file__), 'tasks', 'task1',"
            " 'solution.py')).read())\n"
        ),
    }


def digest(folder: Path) -> str:
    hashed = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        hashed.update(path.read_bytes())
    return hashed.hexdigest()


class Listener:
    """A TCP server on the host's loopback that counts connections (none may come)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.server.settimeout(0.5)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                connection, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        self.server.close()


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """One batch: two honest classmates and every attack, as a grader would run it."""
    base = tmp_path_factory.mktemp("attacks")
    home, grader, out, folder = (base / name for name in ("home", "grader", "out", "class"))
    for path in (home, grader, out, folder):
        path.mkdir()
    (home / ".secret").write_text(TOKEN)
    task = get_task("task1")
    graded_notebook(folder / "alice_task1.ipynb", task.solution_source)
    peer = graded_notebook(folder / "bob_task1.ipynb", task.buggy_source)
    # A classmate whose metadata names the learner with a lone surrogate.
    write_notebook(folder / "carol_task1.ipynb", "%%whip_grade task1\nprint('hi')\n")
    notebook = json.loads((folder / "carol_task1.ipynb").read_text())
    notebook["metadata"]["whipnb"] = {"learner": "carol\ud800"}
    (folder / "carol_task1.ipynb").write_text(json.dumps(notebook))
    db = grader / "gradebook.sqlite"
    listener = Listener()
    for name, body in attacks(home, peer, db, listener.port).items():
        graded_notebook(folder / name, body)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    instructor = base / "instructor.txt"
    instructor.write_text("the instructor's file\n")
    json_out = out / "grades.json"
    json_out.symlink_to(instructor)  # planted as the attack would: never written through
    package = Path(whipnb.__file__).parent
    package_digest = digest(package)
    env = {**os.environ, "HOME": str(home), "WHIPNB_SECRET_TOKEN": TOKEN}
    command = [sys.executable, "-m", "whipnb", "grade", str(folder), "--jobs", "2"]
    command += ["--db", str(db), "--json", str(json_out), "--memory-mb", str(MEMORY_MB)]
    command += ["--learner-metadata", "whipnb.learner", "--timeout", "60", "--quiet"]
    started = time.monotonic()
    run = subprocess.run(command, env=env, cwd=grader, capture_output=True, text=True)
    listener.close()
    records = json.loads(json_out.read_text()) if json_out.exists() else []
    yield {
        "run": run,
        "elapsed": time.monotonic() - started,
        "records": {Path(record["path"]).name: record for record in records},
        "folder": folder,
        "before": before,
        "db": db,
        "home": home,
        "instructor": instructor,
        "json": json_out,
        "package": package,
        "package_digest": package_digest,
        "listener": listener,
    }


def message(attacked, name: str) -> str:
    return attacked["records"][name]["message"]


def test_the_batch_completes_with_one_record_each_under_the_sandbox(attacked):
    run = attacked["run"]
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert set(attacked["records"]) == set(attacked["before"])
    assert {record["sandbox"] for record in attacked["records"].values()} == {"bwrap"}


def test_classmates_grades_and_files_are_intact(attacked):
    records = attacked["records"]
    assert records["alice_task1.ipynb"]["score"] >= 0.85  # the seed's top band: a full fix
    assert 0.15 <= records["bob_task1.ipynb"]["score"] <= 0.25  # both bugs: Minimal band
    folder = attacked["folder"]
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == attacked["before"]


def test_the_gradebook_cannot_be_found_or_written(attacked):
    assert "WROTE" not in message(attacked, "gradebook_task1.ipynb")
    assert "--db" not in message(attacked, "gradebook_task1.ipynb")  # no grader in /proc
    with sqlite3.connect(attacked["db"]) as connection:
        triggers = connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        assert triggers.fetchall() == []
        scores = dict(connection.execute("SELECT path, score FROM gradings").fetchall())
    alice = next(score for path, score in scores.items() if "alice" in path)
    assert alice >= 0.85


def test_the_installed_packages_are_read_only(attacked):
    text = message(attacked, "package_task1.ipynb")
    # Refused twice: not the kernel's files (its own uid), and a read-only mount anyway.
    refusals = text.count("Read-only file system") + text.count("Permission denied")
    assert "WROTE" not in text and refusals == 2
    assert digest(attacked["package"]) == attacked["package_digest"]


def test_classmates_notebooks_can_be_neither_read_nor_written(attacked):
    text = message(attacked, "peers_task1.ipynb")
    assert "WROTE" not in text and "cells" not in text
    assert text.count("No such file or directory") == 2


def test_environment_and_home_secrets_are_out_of_reach(attacked):
    assert "No such file or directory" in message(attacked, "secrets_task1.ipynb")
    for record in attacked["records"].values():
        assert TOKEN not in json.dumps(record)


def test_an_ipython_startup_file_reaches_no_later_kernel(attacked):
    assert list(attacked["home"].rglob("00-zero.py")) == []  # the grader's HOME untouched
    assert attacked["records"]["alice_task1.ipynb"]["score"] >= 0.85


def test_the_json_output_replaces_a_planted_symlink_and_spares_its_target(attacked):
    assert attacked["instructor"].read_text() == "the instructor's file\n"
    assert not attacked["json"].is_symlink()


def test_signals_reach_neither_the_grader_nor_sibling_kernels(attacked):
    record = attacked["records"]["signals_task1.ipynb"]
    # It sees only its own sandbox: the sandbox's init, the kernel, maybe a helper.
    saw = int(record["message"].split("saw ")[1].split()[0])
    assert saw <= 5
    assert attacked["run"].returncode == 0


def test_sibling_kernels_are_invisible(attacked):
    assert "siblings: 0 found" in message(attacked, "siblings_task1.ipynb")


def test_an_escaped_daemon_is_counted_and_killed(attacked):
    record = attacked["records"]["escape_task1.ipynb"]
    # The kernel (~300 MB) plus the daemon's 900 MB pass 1024 MB only if both count.
    assert record["status"] == "memory", record["message"]
    left = [
        process
        for process in psutil.process_iter(["cmdline"])
        if DAEMON_MARK in " ".join(process.info["cmdline"] or [])
    ]
    assert left == []


def test_there_is_no_network(attacked):
    text = message(attacked, "network_task1.ipynb")
    assert "CONNECTED" not in text and "unreachable" in text
    assert attacked["listener"].connections == 0


def test_exec_of_the_shipped_solution_earns_nothing_and_is_flagged(attacked):
    record = attacked["records"]["copier_task1.ipynb"]
    # The file reads empty: nothing trains, the seed's "no bugs fixed, code runs" row
    # (0.15-0.25), where the copy itself would have scored in the top band.
    assert 0.15 <= record["score"] <= 0.25 and record["status"] == "graded"
    assert any("solution.py" in finding for finding in record["copying"])
    assert any(
        "reference solution" in f for f in attacked["records"]["alice_task1.ipynb"]["copying"]
    )


def test_a_lone_surrogate_in_a_metadata_learner_id_is_stored_escaped(attacked):
    record = attacked["records"]["carol_task1.ipynb"]
    assert record["learner"] == "carol\\ud800"
    with sqlite3.connect(attacked["db"]) as connection:
        learners = {row[0] for row in connection.execute("SELECT learner FROM gradings")}
    assert "carol\\ud800" in learners
