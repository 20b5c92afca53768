"""Subcommand stub: replaced by the work that implements it."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    print("not implemented yet", file=sys.stderr)
    return 2
