"""whipnb: hands-on exercises in debugging PyTorch training code, graded by behaviour.

``%load_ext whipnb`` registers the ``%%whip_grade`` cell magic;
:func:`grade_source` is the plain Python API behind it.

Importing ``whipnb`` itself is cheap: the grading core (and torch with it) is
imported the first time one of its names is used, so the command line's
``--help``, ``export`` and ``report`` never pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from whipnb.version import __version__

#: Public names and the module each one lives in, imported on first use.
_LAZY = {
    "grade_source": "whipnb.api",
    "failure_result": "whipnb.core.result",
    "Result": "whipnb.core.result",
    "Check": "whipnb.core.result",
    "RESULT_MIME": "whipnb.core.result",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'whipnb' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    from whipnb.notebook.magic import register

    register(ipython)


__all__ = [*_LAZY, "__version__", "load_ipython_extension"]
