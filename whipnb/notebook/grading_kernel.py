"""Loaded into every headless grading kernel at start (an IPython extension).

``exit()`` and ``quit()`` in a kernel do not stop the cell: they ask the
kernel to shut down 0.1 s later, so whether the grader's read-out cell still
runs would depend on timing, and the same submission could be graded once and
declared dead the next time.  In the grading kernel they do nothing: the cell
is graded as it ran, which is also what the learner saw in the notebook before
the kernel went away.  (``sys.exit()`` is unaffected: it raises
``SystemExit``, which IPython catches like any exception, and the run is
graded as a crash.)
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    def ask_exit() -> None:
        """exit() or quit() in a graded cell: the kernel stays for the read-out."""

    ipython.ask_exit = ask_exit
