"""What every step's command line shares: error reporting, common options, progress display."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

from dltools.errors import DltoolsError
from dltools.raster.bands import BANDS_HELP, parse_bands, parse_range

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


def add_bands(parser: argparse.ArgumentParser, training: bool) -> None:
    """``--bands`` (and for training ``--stretch``): which bands of the images feed the network."""
    parser.add_argument(
        "--bands",
        metavar="B[,G,B]",
        help=BANDS_HELP
        + (
            "; the choice is saved with the model (default: %(default)s)"
            if training
            else "; without it images must have the band count the model was trained on "
            "(default: %(default)s, the model's bands)"
        ),
    )
    if training:
        parser.add_argument(
            "--stretch",
            metavar="LOW,HIGH",
            help="images that are not 8-bit (16-bit, float) are scaled from LOW..HIGH to 0..255 "
            "for the network; saved with the model and applied at inference (default: "
            "%(default)s, each band's 2nd..98th percentile over a sample of windows of the "
            "training images)",
        )


def band_options(
    args: argparse.Namespace,
) -> tuple[tuple[int, int, int] | None, tuple[float, float] | None]:
    """``(bands, stretch)`` of :func:`add_bands`'s options, parsed (None: not given)."""
    bands = None if args.bands is None else parse_bands(args.bands)
    stretch = getattr(args, "stretch", None)
    return bands, None if stretch is None else parse_range(stretch)


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
