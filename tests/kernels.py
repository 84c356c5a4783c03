"""Helpers for tests that need real notebooks and real kernels."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient


def write_notebook(path: Path, *sources: str, nbformat_version: int = 4) -> Path:
    """A notebook file whose code cells hold ``sources``, in order."""
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in sources]
    )
    path.write_text(nbformat.writes(notebook), encoding="utf-8")
    return path


def execute(*sources: str, timeout: float = 120) -> nbformat.NotebookNode:
    """Run cells in a fresh kernel, the way a learner's front end would."""
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in sources]
    )
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True).execute()
    return notebook


def outputs_with(cell: nbformat.NotebookNode, mime: str) -> list[dict]:
    return [output for output in cell.outputs if mime in output.get("data", {})]
