"""whipnb: hands-on exercises in debugging PyTorch training code, graded by behaviour.

``%load_ext whipnb`` registers the ``%%whip_grade`` cell magic;
:func:`grade_source` is the plain Python API behind it.
"""

from whipnb.core import failure_result, grade_source
from whipnb.result import RESULT_MIME, Check, Result
from whipnb.version import __version__


def load_ipython_extension(ipython) -> None:  # noqa: ANN001 - IPython's own signature
    from whipnb.magic import register

    register(ipython)


__all__ = [
    "RESULT_MIME",
    "Check",
    "Result",
    "__version__",
    "failure_result",
    "grade_source",
    "load_ipython_extension",
]
