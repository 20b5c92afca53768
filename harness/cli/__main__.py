"""`python -m harness.cli` is the `streamconform` command, as `python -m harness` is."""

import sys

from harness.cli import main

sys.exit(main())
