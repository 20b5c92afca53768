"""`python -m harness` is the `streamconform` command (for environments where the console script is not on PATH)."""

import sys

from harness.cli import main

sys.exit(main())
