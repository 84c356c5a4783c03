"""An OS sandbox (Debian's bubblewrap) around any command that runs learner code.

Learner code is hostile.  Every process that runs it (a grading kernel, an
agent's tool snippet, anything else) is started through :class:`Sandbox`,
which turns a command line into one that runs it inside ``bwrap``:

- a **read-only view** of the system (``/usr``, ``/etc``, the merged-usr
  symlinks) and of the Python environment the command needs
  (:func:`python_view`: the venv and its base interpreter; :func:`package_view`:
  the ``whipnb`` package only, never the rest of its checkout);
- **one private writable work folder** (the command's working directory), plus
  any ``writable`` folder given (a kernel's ZMQ ``ipc`` socket folder), tmpfs
  ``/tmp``, ``/dev/shm`` and HOME, nothing else: no gradebook, outputs,
  submissions, other sandboxes or the grader's HOME exist inside;
- files in ``hidden`` read as empty (the reference solutions shipped in the
  package: :func:`package_view` hides them);
- **no network** (``--unshare-net``: only the loopback of an empty network
  namespace), its own PID, IPC and UTS namespaces with ``--die-with-parent``:
  when the sandbox's first process ends or the grader dies, the kernel kills
  everything left inside, double-forked ``setsid`` daemons included;
- a **cleared environment**: exactly ``env``, nothing inherited;
- **another uid**: when the grader runs as root, the command runs under
  ``uid`` (a real ``setresuid`` by ``setpriv`` inside the sandbox, with every
  capability dropped and ``no_new_privs``), so it can neither signal nor read
  what the grader or other sandboxes own.  :class:`UidLease` hands out one
  uid per running sandbox, across processes (a lock file per uid);
- **limits from outside** (:class:`ResourceLimits`, set with ``prlimit``
  before ``bwrap`` starts, inherited by everything inside): processes per uid
  (``RLIMIT_NPROC``; only with a uid of its own, since it counts per uid), the
  size of any file written (``RLIMIT_FSIZE``), open files (``RLIMIT_NOFILE``).
  Memory is watched from outside over the whole process tree
  (:class:`whipnb.headless.limits.KernelWatch`).

Usage::

    with SandboxFolder(uid) as folder:            # private work/ and channel/
        box = Sandbox(work=folder.work, env={...}, uid=uid,
                      read_only=python_view() + package_view().read_only,
                      hidden=package_view().hidden, writable=(folder.channel,),
                      empty=folder.empty)
        subprocess.run(box.command(["python", "-c", "..."]), cwd=folder.work)

:func:`unavailable` says why bubblewrap cannot be used on this machine (or
``None``); ``whipnb grade`` then refuses unless told ``--sandbox none``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil

#: The two values of ``--sandbox`` (and of every record's ``sandbox`` field).
BWRAP = "bwrap"
NONE = "none"
SANDBOXES = (BWRAP, NONE)
#: Where Debian installs bubblewrap (``apt-get install bubblewrap``).
BWRAP_PATH = "/usr/bin/bwrap"
#: The uids sandboxes run under when the grader is root (unused by Debian's ranges).
FIRST_UID = 470_000
UID_COUNT = 4096
#: HOME inside every sandbox: an empty tmpfs.
SANDBOX_HOME = "/home/learner"
#: System folders shown read-only (those that exist; symlinks are recreated as such).
SYSTEM_PATHS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class ResourceLimits:
    """Per-sandbox rlimits, set before ``bwrap`` starts and inherited by all inside."""

    #: Processes and threads of the sandbox's uid (torch and ZMQ start a few dozen threads).
    processes: int = 512
    #: The largest file it may write, in bytes.
    file_bytes: int = 1 << 30
    open_files: int = 4096

    def prlimit(self, own_uid: bool) -> list[str]:
        """``prlimit`` arguments; ``RLIMIT_NPROC`` only when the sandbox has its own uid
        (it counts every process of the uid, the grader's own ones otherwise)."""
        limits = [f"--fsize={self.file_bytes}", f"--nofile={self.open_files}"]
        if own_uid:
            limits.append(f"--nproc={self.processes}")
        return ["prlimit", *limits, "--"]


@dataclass(frozen=True)
class PackageView:
    """What a sandbox needs to import a package, and the files inside it to hide."""

    #: Folders bound read-only.
    read_only: tuple[Path, ...]
    #: Files inside them that read as empty.
    hidden: tuple[Path, ...]
    #: The folder to put on ``PYTHONPATH``.
    path_entry: Path


@dataclass(frozen=True)
class Sandbox:
    """How to wrap one command; :meth:`command` returns the wrapped command line."""

    #: The only writable folder of the host the command sees; its working directory.
    work: Path
    #: The whole environment of the command.
    env: Mapping[str, str] = field(default_factory=dict)
    #: Folders shown read-only beyond the system (e.g. :func:`python_view`).
    read_only: Sequence[Path] = ()
    #: More folders shown writable (e.g. a folder for ZMQ ``ipc`` sockets).
    writable: Sequence[Path] = ()
    #: Files (inside ``read_only`` folders) that read as empty.
    hidden: Sequence[Path] = ()
    #: An empty file of the grader's, bound over each hidden file.
    empty: Path | None = None
    #: The uid (and gid) to run as; ``None`` keeps the caller's (only root can change it).
    uid: int | None = None
    limits: ResourceLimits = ResourceLimits()
    network: bool = False
    bwrap: str = BWRAP_PATH

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped: ``prlimit ... bwrap ... [setpriv ...] argv``."""
        if self.hidden and self.empty is None:
            raise ValueError("hidden files need an empty file to show instead")
        own_uid = self.uid is not None
        return [
            *self.limits.prlimit(own_uid),
            self.bwrap,
            *self._namespaces(),
            *self._view(),
            "--clearenv",
            *(arg for name, value in self.env.items() for arg in ("--setenv", name, value)),
            "--chdir",
            os.path.realpath(self.work),
            "--",
            *(_drop_to(self.uid) if own_uid else []),
            *argv,
        ]

    def _namespaces(self) -> list[str]:
        spaces = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if self.uid is None:  # unprivileged bwrap needs a user namespace
            spaces.append("--unshare-user")
        if not self.network:
            spaces.append("--unshare-net")
        return [*spaces, "--die-with-parent", "--new-session", "--hostname", "whipnb"]

    def _view(self) -> list[str]:
        view = _Tree()
        for name in SYSTEM_PATHS:
            path = Path(name)
            if path.is_symlink():
                view.args += ["--symlink", os.readlink(path), name]
            elif path.is_dir():
                view.bind("--ro-bind", path)
        # The fresh file systems first, so that binds inside them (a checkout or a venv
        # under /tmp, the work folder) are laid over them rather than hidden by them.
        view.args += ["--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
        view.args += ["--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]
        view.made.add(Path("/tmp"))
        view.args += [*view.parents(Path(SANDBOX_HOME)), "--perms", "0777", "--tmpfs", SANDBOX_HOME]
        view.made.add(Path(SANDBOX_HOME))
        for path in self.read_only:
            view.bind("--ro-bind", path)
        for path in self.hidden:
            view.args += ["--ro-bind", str(self.empty), str(path)]
        for path in (self.work, *self.writable):
            view.bind("--bind", path)
        return view.args


class _Tree:
    """bwrap arguments that build the sandbox's file tree; parents made world-traversable
    (bwrap would make them 0700 as root, which another uid cannot enter)."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.made: set[Path] = {Path("/")}

    def parents(self, path: Path) -> list[str]:
        made = []
        for parent in reversed(path.parents):
            if parent not in self.made:
                self.made.add(parent)
                made += ["--perms", "0755", "--dir", str(parent)]
        return made

    def bind(self, option: str, path: Path) -> None:
        path = Path(os.path.realpath(path))
        self.args += [*self.parents(path), option, str(path), str(path)]
        self.made.add(path)


def _drop_to(uid: int) -> list[str]:
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def python_view() -> tuple[Path, ...]:
    """The folders this Python needs: its venv and the interpreter the venv points to."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    return _outermost(Path(os.path.realpath(path)) for path in paths if os.path.isdir(path))


def package_view() -> PackageView:
    """The ``whipnb`` package alone (not its checkout), its reference solutions hidden."""
    package = Path(os.path.realpath(__file__)).parent.parent
    hidden = tuple(sorted(package.glob("tasks/*/solution.py")))
    return PackageView((package,), hidden, package.parent)


def _outermost(paths: Iterable[Path]) -> tuple[Path, ...]:
    """Paths not inside another of them (binding both would be redundant)."""
    ordered = sorted(set(paths), key=lambda path: len(path.parts))
    kept: list[Path] = []
    for path in ordered:
        if not any(path.is_relative_to(outer) for outer in kept):
            kept.append(path)
    return tuple(kept)


class SandboxFolder:
    """A private folder tree for one sandbox, owned by the grader (mode 0711):
    ``work/`` and ``channel/`` given to ``uid``, and the ``empty`` file shown over
    hidden files.  Removed, with all the sandbox wrote, on exit."""

    def __init__(self, uid: int | None = None, prefix: str = "whipnb-") -> None:
        self._folder = tempfile.TemporaryDirectory(prefix=prefix)
        root = Path(self._folder.name)
        root.chmod(0o711)
        self.root = root
        self.work = root / "work"
        self.channel = root / "channel"
        self.empty = root / "empty"
        for folder in (self.work, self.channel):
            folder.mkdir(mode=0o700)
            if uid is not None:
                os.chown(folder, uid, uid)
        self.empty.touch(mode=0o444)

    def __enter__(self) -> SandboxFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        self._folder.cleanup()


class UidLease:
    """One uid from ``FIRST_UID .. FIRST_UID + UID_COUNT`` for one sandbox at a time.

    Held through an exclusive ``flock`` on a lock file per uid in a folder only the
    grader can write, so that threads, other batches and Dask workers on the same
    machine never share one; a uid that still owns a process is skipped.  Only a root
    grader can change uid: otherwise :attr:`uid` is ``None``.
    """

    def __init__(self, first: int = FIRST_UID, count: int = UID_COUNT) -> None:
        self.uid: int | None = None
        self._lock: int | None = None
        if os.geteuid() != 0:
            return
        locks = Path(tempfile.gettempdir()) / "whipnb-uids"
        locks.mkdir(mode=0o700, exist_ok=True)
        busy = _uids_in_use()
        for uid in range(first, first + count):
            if uid in busy:
                continue
            descriptor = os.open(locks / str(uid), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                continue
            self.uid, self._lock = uid, descriptor
            return
        raise RuntimeError(f"no free sandbox uid in {first}..{first + count - 1}")

    def __enter__(self) -> UidLease:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing drops the flock
            self._lock = None


def _uids_in_use() -> set[int]:
    uids = set()
    for process in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error, TypeError):
            uids.add(process.info["uids"].real)
    return uids


def unavailable(bwrap: str | None = None) -> str | None:
    """Why bubblewrap cannot sandbox here, in plain words; ``None`` when it can.

    Tries the real thing: a command in a sandbox with the namespaces kernels get.
    """
    bwrap = bwrap or BWRAP_PATH
    if shutil.which(bwrap) is None:
        return (
            f"bubblewrap is not installed ({bwrap} not found; on Debian or Ubuntu: "
            "apt-get install bubblewrap)"
        )
    missing = [tool for tool in ("prlimit", "setpriv") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found (util-linux)"
    uid = FIRST_UID if os.geteuid() == 0 else None
    with SandboxFolder(uid) as folder:
        box = Sandbox(work=folder.work, env={"PATH": "/usr/bin:/bin"}, uid=uid, bwrap=bwrap)
        try:
            trial = subprocess.run(
                box.command(["true"]), capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"bubblewrap could not be started ({error})"
    if trial.returncode != 0:
        detail = trial.stderr.decode(errors="replace").strip().splitlines()
        reason = detail[-1] if detail else f"exit status {trial.returncode}"
        return f"bubblewrap does not work here ({reason}; are user namespaces disabled?)"
    return None
