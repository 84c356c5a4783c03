"""Gradescope's documented ``results.json`` fields (autograder specification), as a check."""

from __future__ import annotations

from typing import Any

TOP_LEVEL = {
    "score",
    "execution_time",
    "output",
    "output_format",
    "visibility",
    "stdout_visibility",
    "extra_data",
    "tests",
}
TEST = {
    "score",
    "max_score",
    "status",
    "name",
    "number",
    "output",
    "output_format",
    "tags",
    "visibility",
}
VISIBILITIES = {"visible", "hidden", "after_due_date", "after_published"}
OUTPUT_FORMATS = {"text", "html", "simple_format", "md", "ansi"}


def assert_gradescope_results(document: dict[str, Any]) -> None:
    """Only documented fields, with the documented types and values."""
    assert set(document) <= TOP_LEVEL, set(document) - TOP_LEVEL
    # The total is required unless every test carries a score.
    assert "score" in document or all("score" in test for test in document["tests"])
    assert isinstance(document["score"], int | float) and document["score"] >= 0
    assert isinstance(document.get("execution_time", 0), int | float)
    assert isinstance(document.get("output", ""), str)
    assert document.get("output_format", "text") in OUTPUT_FORMATS
    for key in ("visibility", "stdout_visibility"):
        assert document.get(key, "visible") in VISIBILITIES
    assert isinstance(document.get("extra_data", {}), dict)
    assert isinstance(document["tests"], list) and document["tests"]
    for test in document["tests"]:
        assert set(test) <= TEST, set(test) - TEST
        assert isinstance(test["name"], str) and test["name"]
        assert test.get("status", "passed") in {"passed", "failed"}
        assert test.get("visibility", "visible") in VISIBILITIES
        assert test.get("output_format", "text") in OUTPUT_FORMATS
        assert isinstance(test.get("output", ""), str)
        assert isinstance(test.get("number", ""), str)
        assert all(isinstance(tag, str) for tag in test.get("tags", []))
        if "score" in test:
            assert 0 <= test["score"] <= test["max_score"]
    scored = sum(test["score"] for test in document["tests"] if "score" in test)
    assert abs(document["score"] - scored) < 1e-6
