"""``whipnb report``: one self-contained HTML page about a class's gradebook.

Per task: the score distribution (a matplotlib histogram, embedded as PNG),
the mean and median over every submission, the pass rate of every check,
sorted so the bugs learners miss most come first, and the submissions that were
not graded (timeout, memory, dead kernel, invalid) with their messages.  Every
submission counts: one that was not graded counts with its score (usually 0)
and has passed only the checks it carries (often none).  Then each learner's
row (score per task, the checks they missed), the pairs of near-identical
submissions (:mod:`whipnb.gradebook.similarity`), and every record whose
``tampering`` findings are not empty.  Everything learners wrote (ids,
messages, findings) is escaped by the template engine: a hostile exception
message stays text.
"""

from __future__ import annotations

import base64
import io
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, select_autoescape
from matplotlib.figure import Figure

from whipnb.core.result import BAND_LABELS, GRADED, STATUSES
from whipnb.gradebook.similarity import DEFAULT_THRESHOLD, similar_pairs
from whipnb.gradebook.store import Grading, check_passed, now, task_checks
from whipnb.tasks import UnknownTaskError, get_task, task_order

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>whipnb grading report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #1a1a1a; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.75em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.rate { display: inline-block; height: 0.8em; background: #3b6ea8; }
section { margin-bottom: 2.5em; }
</style></head><body>
<h1>whipnb grading report</h1>
<p>{{ learners }} learners, {{ gradings|length }} submissions (one per learner and task:
the newest file), generated {{ generated }} from <code>{{ source }}</code>.</p>
<table><tr>{% for status in statuses %}<th>{{ status }}</th>{% endfor %}</tr>
<tr>{% for status in statuses %}<td class="num">{{ status_counts[status] }}</td>{% endfor %}</tr>
</table>
{% for task in tasks %}
<section id="{{ task.id }}">
<h2>{{ task.id }}: {{ task.title }}</h2>
<p>{{ task.count }} submissions, {{ task.graded }} graded;
mean score <b class="mean">{{ "%.3f"|format(task.mean) }}</b>,
median {{ "%.3f"|format(task.median) }} (every submission counts, a submission not graded
with its score){% if task.graded and task.graded < task.count %}; mean of the graded only
{{ "%.3f"|format(task.graded_mean) }}{% endif %}.</p>
<img alt="score distribution of {{ task.id }}" src="data:image/png;base64,{{ task.plot }}">
<h3>Checks, most missed first</h3>
<p><small>Out of every submission: one not graded has passed only the checks it
carries.</small></p>
{% if task.checks %}
<table><tr><th>check</th><th>passed</th><th>pass rate</th><th></th></tr>
{% for check in task.checks %}
<tr><td>{{ check.title }} <small>({{ check.id }})</small></td>
<td class="num">{{ check.passed }} / {{ check.total }}</td>
<td class="num">{{ "%.0f"|format(100 * check.rate) }}%</td>
<td><span class="rate" style="width: {{ (100 * check.rate)|round|int }}px"></span></td></tr>
{% endfor %}</table>
{% else %}<p>No submission carries checks yet.</p>{% endif %}
<h3>Not graded</h3>
{% if task.failures %}
<table><tr><th>learner</th><th>status</th><th>message</th><th>file</th></tr>
{% for g in task.failures %}
<tr><td>{{ g.learner }}</td><td>{{ g.result.status }}</td><td>{{ g.result.message }}</td>
<td><code>{{ g.path }}</code></td></tr>
{% endfor %}</table>
{% else %}<p>Every submission was graded.</p>{% endif %}
</section>
{% endfor %}
<section id="learners">
<h2>Learners</h2>
<p>Each learner's score per task, and the checks they did not pass (the bugs they
missed); an empty cell: nothing submitted.</p>
<table><tr><th>learner</th>{% for task in tasks %}<th>{{ task.id }}</th>{% endfor %}
<th>total</th></tr>
{% for row in learner_rows %}
<tr class="learner"><td>{{ row.learner }}</td>
{% for task in tasks %}{% set g = row.gradings.get(task.id) %}
<td>{% if g %}<span class="num">{{ "%.3f"|format(g.result.score) }}</span>
{{ g.result.band }}{% if g.result.status != "graded" %} ({{ g.result.status }}){% endif %}
{% set missed = row.missed[task.id] %}{% if missed %}<br><small>missed:
{{ missed|join("; ") }}</small>{% endif %}{% endif %}</td>
{% endfor %}<td class="num">{{ "%.3f"|format(row.total) }}</td></tr>
{% endfor %}</table>
{% if duplicates %}
<h3>Several files for one learner and task</h3>
<table><tr><th>learner</th><th>task</th><th>chosen</th><th>why</th><th>also</th></tr>
{% for g in duplicates %}
<tr><td>{{ g.learner }}</td><td>{{ g.result.task }}</td><td><code>{{ g.path }}</code></td>
<td>{{ g.chosen_because }}</td><td>{% for other in g.other_files %}<code>{{ other }}</code>
{% endfor %}</td></tr>
{% endfor %}</table>
{% endif %}
</section>
<section id="similarity">
<h2>Similar submissions</h2>
<p>Pairs of learners whose graded cells for a task are near-identical once the
code the course ships (the buggy script, the reference fix) and code most of the
class shares are set aside; names, strings and numbers do not count, so renamed
variables do not hide a copy. Similarity is the share of fingerprints in common
(at least {{ "%.0f"|format(100 * similarity_threshold) }}%). A lead to look at, not a verdict.</p>
{% if pairs %}
<table><tr><th>task</th><th>learners</th><th>similarity</th><th>shared</th><th>files</th></tr>
{% for pair in pairs %}
<tr class="pair"><td>{{ pair.task }}</td><td>{{ pair.learners|join(" and ") }}</td>
<td class="num">{{ "%.0f"|format(100 * pair.similarity) }}%</td>
<td class="num">{{ pair.shared }}</td>
<td><code>{{ pair.paths[0] }}</code><br><code>{{ pair.paths[1] }}</code></td></tr>
{% endfor %}</table>
{% else %}<p>No pair of near-identical submissions.</p>{% endif %}
</section>
<section id="copying">
<h2>The reference solution</h2>
{% if copied %}
<p>These submissions are the reference solution shipped with whipnb, token for token, or
reach for its file (which the sandbox shows empty). A learner whose fix is word for word
the reference's is listed too: judge by hand.</p>
<table><tr><th>learner</th><th>task</th><th>score</th><th>findings</th><th>file</th></tr>
{% for g in copied %}
<tr><td>{{ g.learner }}</td><td>{{ g.result.task }}</td>
<td class="num">{{ "%.3f"|format(g.result.score) }}</td>
<td><ul>{% for finding in g.result.copying %}<li>{{ finding }}</li>{% endfor %}</ul></td>
<td><code>{{ g.path }}</code></td></tr>
{% endfor %}</table>
{% else %}<p>No submission is the shipped reference solution.</p>{% endif %}
</section>
<section id="tampering">
<h2>Tampering</h2>
{% if tampered %}
<p>The grader found and undid these changes to itself while grading; the scores
were computed with the originals restored.</p>
<table><tr><th>learner</th><th>task</th><th>score</th><th>findings</th><th>file</th></tr>
{% for g in tampered %}
<tr><td>{{ g.learner }}</td><td>{{ g.result.task }}</td>
<td class="num">{{ "%.3f"|format(g.result.score) }}</td>
<td><ul>{% for finding in g.result.tampering %}<li>{{ finding }}</li>{% endfor %}</ul></td>
<td><code>{{ g.path }}</code></td></tr>
{% endfor %}</table>
{% else %}<p>No tampering was detected.</p>{% endif %}
</section>
</body></html>
"""


@dataclass(frozen=True)
class CheckRate:
    id: str
    title: str
    passed: int
    total: int

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


@dataclass(frozen=True)
class TaskSummary:
    id: str
    title: str
    gradings: list[Grading]
    plot: str  # base64 PNG

    @property
    def count(self) -> int:
        return len(self.gradings)

    @property
    def scores(self) -> list[float]:
        """Every submission's score, graded or not."""
        return [g.result.score for g in self.gradings]

    @property
    def graded(self) -> int:
        return sum(g.result.status == GRADED for g in self.gradings)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def median(self) -> float:
        return statistics.median(self.scores)

    @property
    def graded_mean(self) -> float:
        return statistics.fmean(g.result.score for g in self.gradings if g.result.status == GRADED)

    @property
    def checks(self) -> list[CheckRate]:
        return check_rates(self.gradings)

    @property
    def failures(self) -> list[Grading]:
        return [g for g in self.gradings if g.result.status != GRADED]


def check_rates(gradings: Sequence[Grading]) -> list[CheckRate]:
    """How often each check of one task passed among all its submissions, least often
    first: a submission not graded, or without the check, did not pass it."""
    titles = {key: title for own in task_checks(gradings).values() for key, title in own.items()}
    rates = [
        CheckRate(key, title, sum(check_passed(g, key) for g in gradings), len(gradings))
        for key, title in titles.items()
    ]
    return sorted(rates, key=lambda rate: (rate.rate, rate.id))


@dataclass(frozen=True)
class LearnerRow:
    """One learner across the tasks: their grading per task and the checks they missed."""

    learner: str
    gradings: dict[str, Grading]
    missed: dict[str, list[str]]

    @property
    def total(self) -> float:
        return sum(g.result.score for g in self.gradings.values())


def learner_rows(gradings: Sequence[Grading]) -> list[LearnerRow]:
    checks = task_checks(gradings)
    by_learner: dict[str, dict[str, Grading]] = {}
    for grading in gradings:
        by_learner.setdefault(grading.learner, {})[grading.result.task] = grading
    rows = []
    for learner, own in sorted(by_learner.items()):
        missed = {
            task: [title for key, title in checks.get(task, {}).items() if not check_passed(g, key)]
            for task, g in own.items()
        }
        rows.append(LearnerRow(learner, own, missed))
    return rows


def score_histogram(gradings: Sequence[Grading]) -> str:
    """A base64 PNG: graded scores and non-graded ones stacked, with the band limits."""
    figure = Figure(figsize=(6.0, 2.4), dpi=100)
    axes = figure.subplots()
    graded = [g.result.score for g in gradings if g.result.status == GRADED]
    other = [g.result.score for g in gradings if g.result.status != GRADED]
    bins = [step / 20 for step in range(21)]
    axes.hist(
        [graded, other],
        bins=bins,
        stacked=True,
        color=["#3b6ea8", "#c44e52"],
        label=["graded", "not graded"],
    )
    for lowest, label in BAND_LABELS[:-1]:
        axes.axvline(lowest, color="#888", linestyle=":", linewidth=1)
        axes.text(lowest, 1.0, f" {label}", transform=axes.get_xaxis_transform(), va="top")
    axes.set_xlim(0, 1)
    axes.set_xlabel("score")
    axes.set_ylabel("submissions")
    axes.yaxis.get_major_locator().set_params(integer=True)
    # Above the axes: inside, the legend would hide the bars at low scores.
    axes.legend(loc="lower left", fontsize="small", frameon=False, bbox_to_anchor=(0, 1), ncols=2)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def build_report(
    gradings: Sequence[Grading],
    source: str = "the gradebook",
    similarity_threshold: float = DEFAULT_THRESHOLD,
) -> str:
    """The HTML page for these gradings (normally one per learner and task, as
    :meth:`~whipnb.gradebook.store.Gradebook.latest` chooses them)."""
    by_task: dict[str, list[Grading]] = {}
    for grading in gradings:
        by_task.setdefault(grading.result.task, []).append(grading)
    tasks = [
        TaskSummary(task, _title(task), own, score_histogram(own))
        for task, own in sorted(by_task.items(), key=lambda item: task_order(item[0]))
    ]
    environment = Environment(autoescape=select_autoescape(default=True))
    return environment.from_string(TEMPLATE).render(
        gradings=gradings,
        learners=len({g.learner for g in gradings}),
        generated=now(),
        source=source,
        statuses=STATUSES,
        status_counts=Counter(g.result.status for g in gradings),
        tasks=tasks,
        learner_rows=learner_rows(gradings),
        duplicates=[g for g in gradings if g.other_files],
        pairs=similar_pairs(gradings, similarity_threshold),
        similarity_threshold=similarity_threshold,
        tampered=[g for g in gradings if g.result.tampering],
        copied=[g for g in gradings if g.result.copying],
    )


def write_report(
    path: str | Path,
    gradings: Sequence[Grading],
    source: str,
    similarity_threshold: float = DEFAULT_THRESHOLD,
) -> None:
    Path(path).write_text(build_report(gradings, source, similarity_threshold), encoding="utf-8")


def _title(task: str) -> str:
    try:
        return get_task(task).title
    except UnknownTaskError:
        return "notebooks that could not be read"
