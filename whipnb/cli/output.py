"""The console the commands print tables on."""

from __future__ import annotations

from rich.console import Console

#: Width of tables written to a log or a pipe (a terminal uses its own width).
LOG_WIDTH = 140


def console() -> Console:
    """A terminal's own width; 140 columns in a log or a pipe, so tables stay readable."""
    screen = Console()
    if not screen.is_terminal:
        screen.width = LOG_WIDTH
    return screen
