"""What every step's command line shares: error reporting and common options."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from dltools.errors import DltoolsError


def reports_errors(run: Callable[[argparse.Namespace], int | None]) -> Callable[..., int]:
    """Wrap a step's ``run(args)`` so that user errors print one line and exit with status 2."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args) or 0
        except DltoolsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    """``--seed``: every random choice of the step derives from it."""
    parser.add_argument(
        "--seed",
        type=int,
        default=default,
        help=f"random seed; the same seed gives the same result (default: {default})",
    )


def add_force(parser: argparse.ArgumentParser) -> None:
    """``--force``: the only way to replace existing outputs."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace outputs that already exist (without it the step refuses and changes nothing)",
    )
