"""Which learners handed in near-identical graded cells, starter code aside.

Each graded cell becomes a stream of normalised Python tokens (:mod:`tokenize`:
every name becomes ``N``, every string ``S``, every number ``0``, comments and
blank lines vanish; keywords, operators and the indentation structure stay), so
renaming variables, rewording comments or changing constants does not hide a
copy.  The stream is fingerprinted by winnowing (Schleimer, Wilkerson and Aiken,
SIGMOD 2003, the method behind MOSS): hashes of every run of :data:`K` tokens,
of which each window of :data:`WINDOW` consecutive hashes contributes its
smallest, so any run of at least ``K + WINDOW - 1`` shared tokens is certain to
be found.

What the course ships is not evidence: every ``K``-token run of the task's
buggy script (what every learner starts from) and of its reference fix (a
minimal fix is that code; copying it is reported by the grader's own integrity
checks) is removed from each submission's fingerprints, and so are
fingerprints that more than ``max_common`` learners share (MOSS's ``-m``: a
fix the whole class arrives at).  Two submissions are reported when what is
left of them overlaps by at least ``threshold`` (Jaccard: shared fingerprints
over the fingerprints of either) and shares at least ``min_shared`` fingerprints,
so two short, identical minimal fixes of a small script do not count.

Our own winnowing rather than the ``copydetect`` package: the graded cells are
Python only, and :mod:`tokenize` gives exact Python tokens (copydetect lexes with
Pygments and renames only some token kinds); the starter code is subtracted per
task from the sources the gradebook holds, with no files to write; and hashes
come from :mod:`hashlib`, so the report is the same on every run.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import keyword
import tokenize
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from whipnb.gradebook.store import Grading

#: Tokens per fingerprinted run, and hashes per winnowing window.
K = 12
WINDOW = 8
DEFAULT_THRESHOLD = 0.7
#: About four lines of code of their own in common, beyond the shipped code.
DEFAULT_MIN_SHARED = 8
DEFAULT_MAX_COMMON = 10
#: Token kinds that carry no structure.
SKIPPED = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
    tokenize.TYPE_COMMENT,
}


@dataclass(frozen=True)
class SimilarPair:
    """Two learners whose graded cells for one task are near-identical."""

    task: str
    learners: tuple[str, str]
    paths: tuple[str, str]
    #: Jaccard overlap of their fingerprints once the starter code is removed.
    similarity: float
    shared: int
    #: How many fingerprints each has of its own (after removing the starter code).
    sizes: tuple[int, int]


def normalised_tokens(source: str) -> list[str]:
    """The code as tokens with names, strings and numbers made anonymous.  Code that
    does not tokenise (a syntax error, an IPython magic) keeps the tokens before it."""
    tokens: list[str] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in SKIPPED:
                continue
            tokens.append(_normalised(token))
    except (tokenize.TokenError, SyntaxError):
        pass
    return tokens


def _normalised(token: tokenize.TokenInfo) -> str:
    if token.type == tokenize.NAME:
        return token.string if keyword.iskeyword(token.string) else "N"
    if token.type == tokenize.STRING or token.type in _FSTRING_PARTS:
        return "S"
    if token.type == tokenize.NUMBER:
        return "0"
    if token.type == tokenize.NEWLINE:
        return ";"
    if token.type == tokenize.INDENT:
        return "{"
    if token.type == tokenize.DEDENT:
        return "}"
    return token.string


#: Python 3.12 splits f-strings into parts; each counts as a string.
_FSTRING_PARTS = {
    getattr(tokenize, name)
    for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
    if hasattr(tokenize, name)
}


def kgram_hashes(tokens: Sequence[str], k: int = K) -> list[int]:
    """A stable 64-bit hash of every run of ``k`` tokens (one run when shorter)."""
    runs = [tokens[i : i + k] for i in range(max(1, len(tokens) - k + 1))] if tokens else []
    return [
        int.from_bytes(hashlib.blake2b("\x1f".join(run).encode(), digest_size=8).digest(), "big")
        for run in runs
    ]


def winnow(hashes: Sequence[int], window: int = WINDOW) -> set[int]:
    """The smallest hash of every window of ``window`` consecutive hashes."""
    if len(hashes) <= window:
        return {min(hashes)} if hashes else set()
    return {min(hashes[i : i + window]) for i in range(len(hashes) - window + 1)}


def fingerprints(source: str) -> set[int]:
    return winnow(kgram_hashes(normalised_tokens(source)))


@cache
def shipped_hashes(task: str) -> frozenset[int]:
    """Every run of the task's shipped buggy script and of its reference fix."""
    from whipnb.tasks import UnknownTaskError, get_task  # torch: not for the command line's start

    try:
        shipped = (get_task(task).buggy_source, get_task(task).solution_source)
    except UnknownTaskError:
        return frozenset()
    return frozenset(
        value for source in shipped for value in kgram_hashes(normalised_tokens(source))
    )


def similar_pairs(
    gradings: Iterable[Grading],
    threshold: float = DEFAULT_THRESHOLD,
    min_shared: int = DEFAULT_MIN_SHARED,
    max_common: int = DEFAULT_MAX_COMMON,
) -> list[SimilarPair]:
    """Pairs of learners, per task, whose graded cells are near-identical once the
    starter code and code shared by more than ``max_common`` learners are removed;
    most similar first.  Gradings without a stored source (unreadable notebooks) take
    no part."""
    by_task: dict[str, list[Grading]] = {}
    for grading in gradings:
        if grading.source.strip():
            by_task.setdefault(grading.result.task, []).append(grading)
    pairs = [
        pair
        for task, own in sorted(by_task.items())
        for pair in _task_pairs(task, own, threshold, min_shared, max_common)
    ]
    return sorted(pairs, key=lambda pair: (-pair.similarity, pair.task, pair.learners))


def _task_pairs(
    task: str, gradings: Sequence[Grading], threshold: float, min_shared: int, max_common: int
) -> list[SimilarPair]:
    shipped = shipped_hashes(task)
    own = {g.id: fingerprints(g.source) - shipped for g in gradings}
    counts = Counter(value for prints in own.values() for value in prints)
    common = {value for value, count in counts.items() if count > max_common}
    own = {key: prints - common for key, prints in own.items()}
    found = []
    for first, second in itertools.combinations(sorted(gradings, key=lambda g: g.learner), 2):
        if first.learner == second.learner:
            continue
        a, b = own[first.id], own[second.id]
        shared = len(a & b)
        if shared < min_shared:
            continue
        similarity = shared / len(a | b)
        if similarity >= threshold:
            found.append(
                SimilarPair(
                    task,
                    (first.learner, second.learner),
                    (first.path, second.path),
                    round(similarity, 3),
                    shared,
                    (len(a), len(b)),
                )
            )
    return found
