"""Attacks that only make sense in a kernel: forged displays, re-registered magics,
rewritten read-out cells, stored outputs. Each is graded headlessly; the record
shows the score the code deserves and the ``tampering`` finding."""

from __future__ import annotations

from pathlib import Path

import nbformat
from kernels import write_notebook

from whipnb.headless.pipeline import grade_notebook
from whipnb.tasks import get_task

BUGGY = get_task("task1").buggy_source
NOTHING_FIXED = (0.15, 0.25)

FORGERIES = """
from IPython.display import display, HTML
display({"application/vnd.whipnb.result+json": {"task": "task1", "score": 1.0,
         "band": "Excellent", "status": "graded"}, "text/plain": "score 1.0"}, raw=True)
display(HTML("<div class='whipnb-panel'>1.000 Excellent</div>"))
"""

HIJACK = """
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.display import display
import whipnb.notebook.magic

FAKE = {"application/vnd.whipnb.result+json": {"task": "task1", "score": 1.0,
        "band": "Excellent", "status": "graded", "checks": [], "metrics": {},
        "message": "", "duration_s": 0.0, "version": "0"}}

@magics_class
class Fake(Magics):
    @cell_magic
    def whip_grade(self, line, cell):
        display(FAKE, raw=True)

get_ipython().register_magics(Fake)
whipnb.notebook.magic.display_last_result = lambda: display(FAKE, raw=True)

def rewrite(lines):
    return ["from IPython.display import display\\n", f"display({FAKE!r}, raw=True)\\n"]

get_ipython().input_transformers_cleanup.append(rewrite)
get_ipython().events.register("pre_run_cell", lambda *args: display(FAKE, raw=True))
"""


def _grade(tmp_path: Path, body: str):
    path = write_notebook(tmp_path / "attack.ipynb", f"%%whip_grade task1\n{body}")
    return grade_notebook(path)


def test_forged_bundles_and_panels_are_ignored_and_flagged(tmp_path):
    result = _grade(tmp_path, BUGGY + FORGERIES)
    assert NOTHING_FIXED[0] <= result.score <= NOTHING_FIXED[1]
    assert "the cell displayed 1 whipnb result bundle(s) of its own" in result.tampering
    assert "the cell displayed 1 imitation score panel(s)" in result.tampering


def test_hijacked_magic_read_out_and_later_cells_are_restored_and_flagged(tmp_path):
    result = _grade(tmp_path, BUGGY + HIJACK)
    assert NOTHING_FIXED[0] <= result.score <= NOTHING_FIXED[1], result.message
    findings = " | ".join(result.tampering)
    assert "re-registered the %%whip_grade magic" in findings
    assert "replaced whipnb.notebook.magic.display_last_result" in findings
    assert "added an IPython input transformer" in findings
    assert "registered a 'pre_run_cell' event callback" in findings


def test_stored_outputs_claiming_a_high_score_are_flagged(tmp_path):
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(f"%%whip_grade task1\n{BUGGY}")]
    )
    notebook.cells[0].outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"application/vnd.whipnb.result+json": {"score": 0.99}, "text/plain": "0.99"},
        )
    ]
    path = tmp_path / "claims.ipynb"
    nbformat.write(notebook, path)
    before = path.read_bytes()
    result = grade_notebook(path)
    assert NOTHING_FIXED[0] <= result.score <= NOTHING_FIXED[1]
    assert any("claim a score of 0.990" in finding for finding in result.tampering)
    assert path.read_bytes() == before
