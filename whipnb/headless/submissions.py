"""Submissions: which notebooks to grade, whose they are, and what their graded cell says.

A submission is read exactly once, as bytes: the content hash the gradebook
keys on and the cell the grader runs come from the same bytes, and the file
is never opened for writing.  Everything that makes a notebook ungradable
(unreadable, not JSON, not a notebook, nbformat 3, no graded cell, several,
an unknown task, an empty cell) becomes a ``problem`` in plain words, which
the batch records as an ``invalid`` grade.

Inputs are hostile too (:func:`read_regular`): only a regular file of at most
:data:`MAX_NOTEBOOK_BYTES` is read (a FIFO, a device or a socket is refused
without blocking; a symbolic link only if it stays inside the folder given);
JSON nested too deeply is invalid, not a crash; names and ids that cannot be
written as UTF-8 (undecodable bytes in a file name, lone surrogates in
metadata) are stored with those characters escaped (:func:`safe_text`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Any

from whipnb.core.result import RESULT_MIME
from whipnb.tasks import UnknownTaskError, get_task

GRADED_CELL = re.compile(r"\A\s*%%whip_grade[ \t]*(?P<task>[^\n]*)(?:\n|\Z)")
#: A task name inside a file or folder name: ``alice_task1``, ``task-2_bob``.
TASK_TOKEN = re.compile(r"(?i)task[ _-]?\d+")
UNKNOWN_TASK = "(unknown)"
#: The largest notebook read (outputs and images included); larger files are invalid.
MAX_NOTEBOOK_BYTES = 32 * 2**20
#: What a second copy of a file is named: ``task1 (1)``, ``task1 - Copy``, ``task1 copy 2``.
COPY_SUFFIX = re.compile(r"(?i)(\s*\(\d+\)|[ _-]*copy(\s*\d+)?)$")


class InvalidSubmission(ValueError):
    """The notebook cannot be graded at all; the message says why."""


@dataclass(frozen=True)
class GradedCell:
    task: str
    body: str


@dataclass(frozen=True)
class Submission:
    """One notebook to grade: where it is, whose it is, and its graded cell (or its problem)."""

    path: Path
    learner: str
    #: SHA-256 of the file's bytes; empty when the file could not be read.
    content_hash: str
    task: str
    cell: GradedCell | None = None
    #: Why it cannot be graded; empty for a gradable submission.
    problem: str = ""
    #: The best score the file's stored outputs claim (ignored; reported if above the grade).
    stored_score: float | None = None


class MissingPaths(FileNotFoundError):
    """Paths given to grade that do not exist: an error, never a learner."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [str(path) for path in paths]
        super().__init__("no such file or folder: " + ", ".join(self.paths))


@dataclass(frozen=True)
class LearnerNaming:
    """How a learner id is found: notebook metadata first (when a key is given), then a
    regular expression over the path below the input folder, then the default rule
    (:func:`learner_from_path`)."""

    pattern: re.Pattern[str] | None = None
    #: A dotted key into the notebook's metadata, e.g. ``whipnb.learner``.
    metadata_key: str | None = None
    #: Folders below a folder given that hold one learner's work (:func:`learner_folders`).
    learner_folders: frozenset[Path] = frozenset()
    #: The folder given that the notebook being named was found in (see :meth:`at`).
    root: Path | None = None

    def for_batch(self, found: Sequence[tuple[Path, Path]]) -> LearnerNaming:
        """This naming, knowing every notebook of the batch (which folders are one learner's)."""
        return replace(self, learner_folders=learner_folders(found))

    def at(self, root: Path | None) -> LearnerNaming:
        """This naming for a notebook found in ``root``."""
        return replace(self, root=root)

    def learner(self, relative: PurePath, metadata: Mapping[str, Any] | None) -> str:
        if self.metadata_key and metadata is not None:
            value = _dig(metadata, self.metadata_key)
            if isinstance(value, str | int) and str(value).strip():
                return str(value).strip()
        if self.pattern is not None:
            match = self.pattern.search(relative.as_posix())
            if match:
                return _matched_learner(match)
        return learner_from_path(relative, self.root, self.learner_folders)


def learner_from_path(
    relative: PurePath, root: Path | None = None, learner_folders: frozenset[Path] = frozenset()
) -> str:
    """The learner a notebook at ``relative`` (below the folder given, ``root``) belongs to.

    In order, the first that gives a name:

    1. the highest folder between ``root`` and the notebook that holds one learner's
       work (:func:`learner_folders`) and is not a task name, without any task name in
       it: ``alice/task1.ipynb``, ``alice/task1_final.ipynb``, nbgrader's
       ``alice/task1/task1.ipynb``, ``alice_task1/notebook.ipynb`` -> ``alice``;
    2. the file name without its task name and a copy's suffix: ``alice_task1.ipynb``,
       ``alice_task1 (1).ipynb``, ``alice_task1 - Copy.ipynb`` -> ``alice``;
    3. the nearest folder that is not a task name, from the notebook's own up to the
       folder given and beyond: ``whipnb grade subs/alice subs/bob`` (each holding
       ``task1.ipynb``) -> ``alice`` and ``bob``; ``whipnb grade notebooks solutions``
       -> ``notebooks`` and ``solutions``;
    4. the file name itself.
    """
    folders = [part for part in reversed(relative.parents) if part.name]
    base = root if root is not None else Path()
    for folder in folders:
        if base / folder in learner_folders and (name := _without_task(folder.name)):
            return name
    enclosing = [_copy_free(relative.stem), *(folder.name for folder in reversed(folders))]
    if root is not None:
        absolute = Path(os.path.abspath(root))
        enclosing += [absolute.name, *(parent.name for parent in absolute.parents)]
    for name in enclosing:
        rest = _without_task(name)
        if rest:
            return rest
    return relative.stem


def learner_folders(found: Sequence[tuple[Path, Path]]) -> frozenset[Path]:
    """The folders strictly below a folder given that hold one learner's work: the file
    names under them name at most one learner (``alice_task1.ipynb`` names ``alice``;
    ``task1.ipynb``, ``task1 (1).ipynb`` name nobody), and no task appears in two of
    their sub-folders (tasks read from the file names; files naming no task count as one
    more task).  Any other folder holds several learners, who are then told apart
    further down or by their file names, and never merge into its name."""
    names: dict[Path, set[str]] = defaultdict(set)
    branches: dict[Path, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for notebook, root in found:
        try:
            relative = notebook.relative_to(root)
        except ValueError:
            continue
        for folder in relative.parents:
            if folder.name:
                below = relative.relative_to(folder).parts
                branch = below[0] if len(below) > 1 else "."
                names[root / folder].add(_name_part(notebook.stem))
                branches[root / folder][_task_token(notebook.name)].add(branch)
    return frozenset(
        folder
        for folder, own in branches.items()
        if len(names[folder] - {""}) <= 1 and all(len(seen) == 1 for seen in own.values())
    )


def find_notebooks(paths: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """``(notebook, root)`` pairs in a stable order: a named file is its own root's only
    notebook, a folder is searched recursively for ``*.ipynb`` (checkpoints skipped);
    a file reached twice (named, and inside a folder named) counts once, where first
    reached.  Raises :class:`MissingPaths` when any path does not exist (a broken link
    named directly exists: it gets an ``invalid`` record)."""
    missing = [name for name in paths if not (Path(name).exists() or Path(name).is_symlink())]
    if missing:
        raise MissingPaths(missing)
    found: list[tuple[Path, Path]] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(
                (notebook, path)
                for notebook in sorted(path.rglob("*.ipynb"))
                if ".ipynb_checkpoints" not in notebook.parts
                and (notebook.is_symlink() or not notebook.is_dir())
            )
        else:
            found.append((path, path.parent))
    seen: set[str] = set()
    unique = []
    for notebook, root in found:
        key = os.path.abspath(notebook)
        if key not in seen:
            seen.add(key)
            unique.append((notebook, root))
    return unique


def load_submission(
    path: Path, root: Path | None = None, naming: LearnerNaming | None = None
) -> Submission:
    """Read ``path`` once and describe it; never raises for what the file is or contains."""
    naming = (naming or LearnerNaming()).at(root)
    relative = _relative(path, root)
    shown = Path(safe_text(os.fsdecode(path)))
    try:
        data = read_regular(path, root)
    except InvalidSubmission as error:
        learner = safe_text(naming.learner(relative, None))
        return Submission(shown, learner, "", guess_task(shown), None, str(error))
    content_hash = hashlib.sha256(data).hexdigest()
    metadata = None
    try:
        if path.suffix != ".ipynb":
            raise InvalidSubmission("not a notebook: only .ipynb files are graded")
        notebook = parse_notebook(data)
        metadata = notebook.get("metadata") if isinstance(notebook.get("metadata"), dict) else {}
        cell = find_graded_cell(notebook)
    except InvalidSubmission as error:
        learner = safe_text(naming.learner(relative, metadata))
        return Submission(shown, learner, content_hash, guess_task(shown), None, str(error))
    learner = safe_text(naming.learner(relative, metadata))
    return Submission(
        shown, learner, content_hash, cell.task, cell, stored_score=stored_score(notebook)
    )


def read_regular(path: Path, root: Path | None = None, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    Never blocks and never follows a link out of ``root``: a FIFO, device or socket
    is refused after a non-blocking open, a symbolic link is read only if its
    target lies inside ``root`` (the folder given), and the open refuses any
    link at the last step, so a file swapped for a link meanwhile is refused too.
    """
    target = path
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        inside = root is not None and target.is_relative_to(os.path.realpath(root))
        if not inside:
            raise InvalidSubmission(
                "not a readable notebook: a symbolic link to a file outside the submissions"
                " folder (not followed)"
            )
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        descriptor = os.open(target, flags)
    except OSError as error:
        raise InvalidSubmission(
            f"not a readable notebook: cannot read the file ({error.strerror or error})"
        ) from None
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidSubmission(f"not a readable notebook: {_file_kind(mode)}, not a file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidSubmission(
            f"not a readable notebook: larger than {limit // 2**20} MB (outputs kept in it?)"
        )
    return data


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return kind
    return "a special file"


def safe_text(text: str) -> str:
    """``text`` as valid Unicode: undecodable file-name bytes and lone surrogates become
    backslash escapes (``caf\\xe9``), so SQLite, CSV, JSON and terminals all take it."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape") if _escaped_bytes_only(text) else None
        if raw is not None:
            return raw.decode("utf-8", "backslashreplace")
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _escaped_bytes_only(text: str) -> bool:
    """Whether every surrogate in ``text`` is a byte smuggled by ``surrogateescape``."""
    return all(not 0xD800 <= ord(char) <= 0xDFFF or 0xDC80 <= ord(char) <= 0xDCFF for char in text)


def stored_score(notebook: Mapping[str, Any]) -> float | None:
    """The best score that the notebook's stored result bundles claim (they prove nothing)."""
    claims = []
    for cell in notebook.get("cells", []):
        outputs = cell.get("outputs", []) if isinstance(cell, Mapping) else []
        for output in outputs if isinstance(outputs, list) else []:
            data = output.get("data", {}) if isinstance(output, Mapping) else {}
            bundle = data.get(RESULT_MIME) if isinstance(data, Mapping) else None
            score = bundle.get("score") if isinstance(bundle, Mapping) else None
            if isinstance(score, int | float) and not isinstance(score, bool):
                claims.append(float(score))
    return max(claims, default=None)


def read_submission(path: Path) -> GradedCell:
    """The graded cell of one notebook file; raises :class:`InvalidSubmission`."""
    submission = load_submission(path)
    if submission.cell is None:
        raise InvalidSubmission(submission.problem)
    return submission.cell


def parse_notebook(data: bytes) -> dict[str, Any]:
    """The notebook's JSON, if it is an nbformat 4 notebook at all."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidSubmission(
            "not a readable notebook: the file is not text (a binary file named .ipynb?)"
        ) from None
    if not text.strip():
        raise InvalidSubmission("not a readable notebook: the file is empty")
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidSubmission(f"not a readable notebook: {_json_problem(text, error)}") from None
    except RecursionError:
        raise InvalidSubmission("not a readable notebook: JSON nested too deeply") from None
    if not isinstance(content, dict) or "nbformat" not in content:
        raise InvalidSubmission("not a readable notebook: JSON, but without an 'nbformat' field")
    version = content["nbformat"]
    if version != 4:
        raise InvalidSubmission(
            f"nbformat {version} is not supported; open it in Jupyter and save it (nbformat 4)"
        )
    if not isinstance(content.get("cells"), list):
        raise InvalidSubmission("not a readable notebook: it has no list of cells")
    return content


def find_graded_cell(notebook: Mapping[str, Any]) -> GradedCell:
    """The one ``%%whip_grade taskN`` cell of a notebook."""
    found = []
    for cell in notebook.get("cells", []):
        if not isinstance(cell, Mapping) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(map(str, source)) if isinstance(source, list) else str(source)
        match = GRADED_CELL.match(source)
        if match:
            found.append(GradedCell(safe_text(match.group("task").strip()), source[match.end() :]))
    if not found:
        raise InvalidSubmission("no graded cell: no code cell starts with '%%whip_grade taskN'")
    if len(found) > 1:
        tasks = ", ".join(cell.task or "(none)" for cell in found)
        raise InvalidSubmission(f"{len(found)} graded cells ({tasks}); exactly one is allowed")
    cell = found[0]
    if not cell.task:
        raise InvalidSubmission("the graded cell names no task: write '%%whip_grade taskN'")
    try:
        get_task(cell.task)
    except UnknownTaskError as error:
        raise InvalidSubmission(str(error)) from None
    if not cell.body.strip():
        raise InvalidSubmission(f"the graded cell for {cell.task} is empty")
    if safe_text(cell.body) != cell.body:
        raise InvalidSubmission(
            f"the graded cell for {cell.task} holds characters that are not valid Unicode"
            " (lone surrogates)"
        )
    return cell


def guess_task(path: str | Path) -> str:
    """The task a file name mentions, for records of notebooks that could not be read."""
    match = re.search(r"task\d+", Path(path).name)
    return match.group(0) if match else UNKNOWN_TASK


def _json_problem(text: str, error: json.JSONDecodeError) -> str:
    if not text.lstrip().startswith(("{", "[")):
        return "the file is not JSON (a script or another file renamed .ipynb?)"
    if error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string"):
        return "truncated JSON: the file ends in the middle of the notebook"
    return f"invalid JSON ({error.msg} at line {error.lineno}, column {error.colno})"


def _without_task(name: str) -> str:
    return TASK_TOKEN.sub("", name).strip(" _-.")


def _copy_free(stem: str) -> str:
    """A file name without the suffix browsers and file managers give a second copy."""
    return COPY_SUFFIX.sub("", stem)


def _name_part(stem: str) -> str:
    """The learner a file name names, or "" (``task1 (1)`` names nobody)."""
    return _without_task(_copy_free(stem))


def _task_token(name: str) -> str:
    """``Task-1_alice.ipynb`` -> ``task1``; "" when the name mentions no task."""
    match = TASK_TOKEN.search(name)
    return "task" + re.sub(r"\D", "", match.group(0)) if match else ""


def _matched_learner(match: re.Match[str]) -> str:
    if "learner" in match.re.groupindex:
        return match.group("learner")
    return match.group(1) if match.re.groups else match.group(0)


def _dig(mapping: Mapping[str, Any], dotted: str) -> Any:
    value: Any = mapping
    for key in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _relative(path: Path, root: Path | None) -> PurePath:
    if root is not None:
        try:
            return path.relative_to(root)
        except ValueError:
            pass
    return PurePath(path.name)
