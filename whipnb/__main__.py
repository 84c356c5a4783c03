"""``python -m whipnb``: the command line."""

import sys

from whipnb.cli import main

sys.exit(main())
