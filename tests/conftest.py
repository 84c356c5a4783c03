"""Fixtures shared by the test modules (plain helpers live in ``helpers.py``)."""

from __future__ import annotations

import pytest

from whipnb.tasks import get_task


@pytest.fixture(scope="session")
def task1():
    return get_task("task1")
