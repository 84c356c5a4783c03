"""Argument types and options that several commands share."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from whipnb.gradebook.store import DEFAULT_DB


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def pattern(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as error:
        raise argparse.ArgumentTypeError(f"not a regular expression: {error}") from None


def add_db(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--db", default=DEFAULT_DB, help=f"the gradebook, an SQLite file (default: {DEFAULT_DB})"
    )
