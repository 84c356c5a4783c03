"""Imported first by the command line: keeps a slow import that it never uses out of
its start-up.

nbformat validates notebooks with jsonschema, and jsonschema imports
``rfc3987_syntax`` whenever it is installed (JupyterLab's dependencies bring it),
which builds a parser grammar at import: about a second of every ``whipnb``
command on an idle machine, several on a loaded one (``docs/PERFORMANCE.md``),
for an IRI format check that the notebook schema never asks for.  Marked
absent, it is skipped by jsonschema exactly as where the package is not
installed.  Kernels never import nbformat and are not affected.
"""

import sys

sys.modules.setdefault("rfc3987_syntax", None)
