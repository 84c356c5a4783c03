"""The seed's six rubric tables, transcribed verbatim (condition, low, high) from the
seed document (``/work/shared/seeds/000_a28db750f8b252ff.txt``, each task's
"Grading Rubric" table), kept in the tests so that the grader's rows are checked
against the seed, not against themselves.  Never edit these to follow the grader."""

from __future__ import annotations

SEED_RUBRICS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "task1": (
        ("Both bugs fixed, VAL_ACC > 0.90", 0.85, 1.0),
        ("One bug fixed, some improvement", 0.40, 0.70),
        ("No bugs fixed, code runs", 0.15, 0.25),
        ("Code crashes", 0.0, 0.10),
    ),
    "task2": (
        ("NaN fixed, VAL_ACC > 0.85", 0.85, 1.0),
        ("NaN fixed, lower accuracy", 0.50, 0.75),
        ("Still has NaN", 0.10, 0.25),
        ("Code crashes", 0.0, 0.10),
    ),
    "task3": (
        ("Both bugs fixed, VAL_ACC > 0.92", 0.85, 1.0),
        ("One bug fixed", 0.40, 0.65),
        ("Bugs not fixed, VAL_ACC < 0.70", 0.10, 0.25),
        ("OOM error", 0.0, 0.10),
    ),
    "task4": (
        ("Both bugs fixed, F1 > 0.75", 0.85, 1.0),
        ("Loss fixed, eval partially correct", 0.50, 0.75),
        ("Wrong loss still used", 0.10, 0.30),
        ("Code crashes", 0.0, 0.10),
    ),
    "task5": (
        ("Bug properly fixed", 0.85, 1.0),
        ("Partial fix (some improvement)", 0.40, 0.70),
        ("No fix (backbone still frozen + in optimizer)", 0.10, 0.25),
        ("Code crashes", 0.0, 0.10),
    ),
    "task6": (
        ("All 4 bugs fixed, VAL_ACC > 0.90", 0.90, 1.0),
        ("3 bugs fixed", 0.65, 0.80),
        ("2 bugs fixed", 0.40, 0.55),
        ("1 bug fixed", 0.20, 0.35),
        ("No bugs fixed", 0.0, 0.15),
    ),
}

#: Added rows that deliberately share a seed row's exact range: another condition the
#: seed grades the same way.  Every other added row lies between the seed's ranges.
SAME_RANGE_AS_SEED: dict[tuple[str, str], tuple[str, str]] = {
    ("task2", "not_trained"): (
        "Still has NaN",
        "the seed's common mistake 'removing the loss entirely instead of fixing it' is "
        "not a fix, so it earns what an unfixed loss earns",
    ),
    ("task3", "crash"): (
        "OOM error",
        "the seed's table has no crash row; every other error is graded like the OOM "
        "error it lists, the task's crash band",
    ),
}
