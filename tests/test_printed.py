"""Printed metric lines parse tolerantly: learners print them in many shapes."""

from __future__ import annotations

import math

import pytest

from whipnb.core.printed import parse_numbers, parse_printed_metrics, printed_scalar


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("LOSSES:[0.69, 0.5, 0.25]", [0.69, 0.5, 0.25]),
        ("LOSSES: [0.69, 0.5]", [0.69, 0.5]),
        ("LOSSES = [tensor(0.6931), tensor(0.5000, grad_fn=<MeanBackward0>)]", [0.6931, 0.5]),
        ("LOSSES:[np.float32(0.25), np.float64(1e-3)]", [0.25, 0.001]),
        ("LOSSES:[tensor(0.1, dtype=torch.float64)]", [0.1]),
        ("LOSSES:[nan, inf, -2.5E+2]", [math.nan, math.inf, -250.0]),
    ],
)
def test_loss_lists_parse_in_every_common_shape(line, expected):
    values = parse_printed_metrics(line)["LOSSES"]
    assert len(values) == len(expected)
    for value, want in zip(values, expected, strict=True):
        assert (math.isnan(value) and math.isnan(want)) or value == pytest.approx(want)


def test_the_last_occurrence_of_a_key_counts():
    stdout = "epoch 1\nVAL_ACC:0.5\nnoise: 3\nVAL_ACC : tensor(0.9250)\n"
    printed = parse_printed_metrics(stdout)
    assert printed_scalar(printed, "VAL_ACC") == pytest.approx(0.925)
    assert "noise" not in printed  # only upper-case metric keys are metric lines


def test_words_and_identifiers_are_not_numbers():
    assert parse_numbers("model2 reached x1 at step 7") == [7.0]
    assert printed_scalar({}, "VAL_ACC") is None
