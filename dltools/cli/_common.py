"""What every step's command line shares: error reporting, common options, progress display."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

from dltools.errors import DltoolsError

T = TypeVar("T")


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
        help="random seed; the same seed gives the same result (default: %(default)s)",
    )


def add_force(parser: argparse.ArgumentParser) -> None:
    """``--force``: the only way to replace existing outputs."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace outputs that already exist (without it the step refuses and changes nothing)",
    )


def show_progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "item",
    count: Callable[[T], int] | None = None,
) -> Iterator[T]:
    """The :class:`dltools.progress.Progress` of the command line: a tqdm bar on a terminal,
    otherwise a plain line on stderr at every tenth of the way (and at the end)."""
    if total is None and count is None and hasattr(items, "__len__"):
        total = len(items)
    tty = sys.stderr.isatty()
    bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=count is not None) if tty else None
    done, shown = 0, 0
    try:
        for item in items:
            yield item
            step = 1 if count is None else count(item)
            done += step
            if bar is not None:
                bar.update(step)
            elif total and (10 * done // total > shown or done >= total):
                shown = 10 * done // total
                print(f"{desc}: {done}/{total} {unit}", file=sys.stderr, flush=True)
    finally:
        if bar is not None:
            bar.close()
