"""`python -m reference_server [--host H] [--port P] [--fault NAME] ...` — the same as `streamconform serve`."""

from __future__ import annotations

import argparse
import sys

from reference_server.cli import add_arguments, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m reference_server", description=__doc__)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
