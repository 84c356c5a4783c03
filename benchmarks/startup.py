"""Start-up: what the ``whipnb`` command pays before it can start a kernel.

Variants, each a new Python process:

* ``python``: the interpreter alone;
* ``torch``: ``import torch`` (what a plain script pays too);
* ``nbformat``: ``import nbformat`` as it comes (jsonschema imports
  rfc3987-syntax, which builds a grammar at import);
* ``nbformat, lean``: the same with ``rfc3987_syntax`` marked absent, as
  ``whipnb.cli.lean_imports`` does it for the command line;
* ``whipnb.cli``: the command line's whole import.
"""

from __future__ import annotations

from bench import PYTHON, Samples, arguments, footer, header, interleaved, ratio, run, table

IMPORTS = {
    "python": "pass",
    "torch": "import torch",
    "nbformat": "import nbformat",
    "nbformat, lean": "import sys; sys.modules.setdefault('rfc3987_syntax', None); import nbformat",
    "whipnb.cli": "import whipnb.cli",
}


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0], rounds=5, tasks=False)
    header("Start-up: imports before the first kernel can start", args)
    variants = {name: lambda code=code: run([PYTHON, "-c", code]) for name, code in IMPORTS.items()}
    samples: dict[str, Samples] = interleaved(variants, args.rounds)
    rows = [[name, f"`{IMPORTS[name]}`", samples[name]] for name in IMPORTS]
    print(table(["variant", "code", "s"], rows))
    lean = ratio(samples["nbformat"], samples["nbformat, lean"])
    print(f"\nnbformat as it comes / with rfc3987_syntax absent: {lean}")
    footer()


if __name__ == "__main__":
    main()
