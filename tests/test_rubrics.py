"""Each task's rubric rows against the seed's tables (``seed_rubrics``, transcribed
verbatim): every seed row is there unchanged, and a row the seed does not list lies
between the seed's ranges, never inside one (or, named in ``SAME_RANGE_AS_SEED`` with
its reason, shares one exactly)."""

from __future__ import annotations

import pytest
from seed_rubrics import SAME_RANGE_AS_SEED, SEED_RUBRICS

from whipnb.tasks import all_tasks, get_task


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Two score ranges share more than an end point."""
    return max(a[0], b[0]) < min(a[1], b[1])


def test_overlap_tells_touching_from_overlapping():
    assert overlap((0.40, 0.70), (0.65, 0.80))
    assert overlap((0.0, 0.10), (0.0, 0.10))
    assert not overlap((0.70, 0.85), (0.85, 1.0))
    assert not overlap((0.30, 0.45), (0.50, 0.75))


def test_every_built_in_task_has_its_seed_table():
    built_in = [task_id for task_id in all_tasks() if task_id.startswith("task")]
    assert built_in == list(SEED_RUBRICS)


@pytest.mark.parametrize("task_id", list(SEED_RUBRICS))
def test_every_seed_row_is_in_the_task_unchanged(task_id):
    rows = {(row.condition, row.low, row.high) for row in get_task(task_id).rows}
    missing = [row for row in SEED_RUBRICS[task_id] if row not in rows]
    assert not missing, f"{task_id} lacks (or changed) the seed rows {missing}"


@pytest.mark.parametrize("task_id", list(SEED_RUBRICS))
def test_added_rows_lie_between_the_seed_ranges(task_id):
    task = get_task(task_id)
    seed = {condition: (low, high) for condition, low, high in SEED_RUBRICS[task_id]}
    added = [
        row
        for row in task.rows
        if (row.condition, row.low, row.high) not in {(c, lo, hi) for c, (lo, hi) in seed.items()}
    ]
    for row in added:
        same_as = SAME_RANGE_AS_SEED.get((task_id, row.key))
        if same_as is not None:
            assert (row.low, row.high) == seed[same_as[0]], f"{row.key} should match {same_as[0]}"
            continue
        clashes = [c for c, span in seed.items() if overlap((row.low, row.high), span)]
        assert not clashes, f"{task_id} row {row.key!r} overlaps the seed rows {clashes}"


@pytest.mark.parametrize("task_id", list(SEED_RUBRICS))
def test_row_keys_are_unique(task_id):
    keys = [row.key for row in get_task(task_id).rows]
    assert len(keys) == len(set(keys))
