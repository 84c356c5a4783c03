"""One rule, from the task template, in all six tasks: training on the validation split
holds the run to the bottom of the row it reaches; training on the grader's own
held-out data (rebuilt by the learner from the task's public data function and the
grader's seed) voids the run.  Each submission is a reference solution with one line
of training data added, so the row it reaches is the solution's row."""

from __future__ import annotations

import pytest
from helpers import check, edit, grade_quietly

from whipnb.tasks import get_task

#: task -> (the line after which training data is added, the added lines, expected row key,
#: the finding): the solution training on (part of) its validation split.
ON_VALIDATION = {
    "task1": (
        "X_train, y_train, X_val, y_val = make_data()\n",
        "X_train, y_train = torch.cat([X_train, X_val]), torch.cat([y_train, y_val])\n",
        "fixed",
        "trained on 500 of the 500 rows of the validation split",
    ),
    "task2": (
        "X_train, y_train, X_val, y_val = make_data()\n",
        "X_train, y_train = torch.cat([X_train, X_val]), torch.cat([y_train, y_val])\n",
        "fixed",
        "trained on 500 of the 500 rows of the validation split",
    ),
    # The script splits its 600 originals itself (120 for validation); once trained on,
    # the validation images are training images: the leakage check fails, one bug fixed.
    "task3": (
        "X_val, y_val = images[order[split:]], labels[order[split:]]\n",
        "X_train, y_train = torch.cat([X_train, X_val]), torch.cat([y_train, y_val])\n",
        "one_fixed",
        "trained on 120 of the 120 rows of the validation split",
    ),
    "task4": (
        "X_train, Y_train, X_val, Y_val = make_data()\n",
        "X_train, Y_train = torch.cat([X_train, X_val]), torch.cat([Y_train, Y_val])\n",
        "fixed",
        "trained on 500 of the 500 rows of the validation split",
    ),
    "task5": (
        "X_train, y_train, X_val, y_val = make_data()\n",
        "X_train, y_train = torch.cat([X_train, X_val[:100]]), torch.cat([y_train, y_val[:100]])\n",
        "fixed",
        "trained on 100 of the 500 rows of the validation split",
    ),
    "task6": (
        "X_val, y_val = prepare(images_val), onehot_val.argmax(dim=1)\n",
        "X_train, y_train = torch.cat([X_train, X_val]), torch.cat([y_train, y_val])\n",
        "all_fixed",
        "trained on 128 of the 128 rows of the validation split's first 128 images "
        "(CHW, 28x28 bilinear)",
    ),
}

#: task -> (anchor, added lines, the finding): the solution training on some of the
#: grader's held-out data, drawn with the task's public ``make_samples`` and the
#: grader's seed and size.
ON_HELD_OUT = {
    "task1": (
        "X_train, y_train, X_val, y_val = make_data()\n",
        "from whipnb.tasks.task1.data import make_samples\n"
        "X_train, y_train = make_samples(4000, 7211)\n",
        "trained on 4000 of the 4000 rows of the grader's held-out data",
    ),
    "task2": (
        "X_train, y_train, X_val, y_val = make_data()\n",
        "from whipnb.tasks.task2.data import make_samples\n"
        "X_train, y_train = make_samples(4000, 7222)\n",
        "trained on 4000 of the 4000 rows of the grader's held-out data",
    ),
    "task3": (
        "X_val, y_val = images[order[split:]], labels[order[split:]]\n",
        "from whipnb.tasks.task3.data import make_samples\n"
        "stolen, stolen_labels = make_samples(4000, 9103)\n"
        "X_train = torch.cat([X_train, stolen[:200]])\n"
        "y_train = torch.cat([y_train, stolen_labels[:200]])\n",
        "trained on 200 of the 4000 rows of the grader's held-out data",
    ),
    "task4": (
        "X_train, Y_train, X_val, Y_val = make_data()\n",
        "from whipnb.tasks.task4.data import make_samples\n"
        "X_train, Y_train = make_samples(4000, 4417)\n",
        "trained on 4000 of the 4000 rows of the grader's held-out data",
    ),
    "task5": (
        "X_train, y_train, X_val, y_val = make_data()\n",
        "from whipnb.tasks.task5.data import make_samples\n"
        "stolen, stolen_labels = make_samples(4000, 5107)\n"
        "X_train = torch.cat([X_train, stolen[:100]])\n"
        "y_train = torch.cat([y_train, stolen_labels[:100]])\n",
        "trained on 100 of the 4000 rows of the grader's held-out data",
    ),
    "task6": (
        "X_val, y_val = prepare(images_val), onehot_val.argmax(dim=1)\n",
        "from whipnb.tasks.task6.data import make_samples\n"
        "stolen, stolen_labels = make_samples(1000, 6006)\n"
        "X_train = torch.cat([X_train, prepare(stolen)])\n"
        "y_train = torch.cat([y_train, stolen_labels])\n",
        "trained on 128 of the 128 rows of the grader's held-out data's first 128 images "
        "(CHW, 28x28 bilinear)",
    ),
}

CAPPED = "Trained on validation data: no credit above this row's minimum."


@pytest.mark.parametrize("task_id", list(ON_VALIDATION))
def test_training_on_the_validation_split_earns_the_rows_minimum(task_id):
    task = get_task(task_id)
    anchor, added, row_key, finding = ON_VALIDATION[task_id]
    result = grade_quietly(task_id, edit(task.solution_source, (anchor, anchor + added)))
    row = task.row(row_key)
    assert (result.rubric_row, result.score) == (row.condition, row.low), result.message
    assert finding in result.tampering
    assert finding in check(result, "integrity").detail
    assert result.message.endswith(CAPPED)


@pytest.mark.parametrize("task_id", list(ON_HELD_OUT))
def test_training_on_the_graders_held_out_data_voids_the_run(task_id):
    task = get_task(task_id)
    anchor, added, finding = ON_HELD_OUT[task_id]
    result = grade_quietly(task_id, edit(task.solution_source, (anchor, anchor + added)))
    assert (result.rubric_row, result.score) == (task.crash_row.condition, 0.0)
    assert finding in result.tampering
    assert result.message.startswith("This run cannot be graded honestly: ")
    assert finding in result.message
