"""What every step's command line shares: error reporting, common options, progress display."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from dltools.errors import DltoolsError
from dltools.io.outputs import ensure_new
from dltools.raster.bands import BANDS_HELP, parse_bands, parse_range

T = TypeVar("T")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that ends with ``(default: X)`` where an option has a default its text does not
    already state: not for required options, options without a default, or on/off flags."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or action.required
            or action.default in (None, argparse.SUPPRESS)
            or action.nargs == 0  # store_true/store_false/count flags: on or off
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


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


def add_label_colors(parser: argparse.ArgumentParser, labels_flag: bool = True) -> None:
    """``--labeldefs`` (colour masks as labels) and ``--strict``; with ``labels_flag`` also
    ``-l/--labels`` (labels.txt, for index rasters), exclusive with ``--labeldefs``."""
    group = parser.add_argument_group("classes of the label files")
    if labels_flag:
        group.add_argument(
            "-l",
            "--labels",
            metavar="TXT",
            help="labels.txt naming the classes of label rasters: value k = line k, "
            "0 = unlabelled (a .mat names its own classes)",
        )
    group.add_argument(
        "--labeldefs",
        metavar="TXT",
        help="labeldefs.txt ('name, R, G, B' per line): the classes, and the colours by which "
        "colour masks (RGB images or palette PNGs) are read; colours not listed are unlabelled. "
        "One-band label rasters are still read by value (value k = line k)",
    )
    group.add_argument(
        "--strict",
        action="store_true",
        help="a colour of a colour mask that --labeldefs does not list is an error naming the "
        "colour and its pixel count (default: such pixels are unlabelled)",
    )


def label_classes(args: argparse.Namespace):
    """``(class names or None, colours or None)`` from ``-l`` / ``--labeldefs`` (see
    :func:`add_label_colors`); colours only with ``--labeldefs``."""
    from dltools.io.labels import read_classes

    if args.strict and not args.labeldefs:
        raise DltoolsError("--strict is about the colours of colour masks: it needs --labeldefs")
    classes = read_classes(getattr(args, "labels", None), None, args.labeldefs)
    if classes is None:
        return None, None
    return classes.names, classes.colors if args.labeldefs else None


def add_folder_options(parser: argparse.ArgumentParser, what: str = "image") -> None:
    """``--keep-going`` and ``--skip-existing``: runs over many inputs (see :func:`run_each`)."""
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help=f"when an {what} fails, report it and go on with the others; every failure is "
        "listed at the end and the exit status is 2 if there was any (default: stop at the "
        f"first failure). A failed {what} never leaves outputs behind",
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help=f"skip an {what} whose outputs all exist (a finished earlier run); one with only "
        "some of them (a killed run) is done again and they are replaced",
    )


def run_each(
    items: Sequence[T],
    outputs: Callable[[T], Sequence[Path]],
    work: Callable[[T], None],
    args: argparse.Namespace,
    start: Callable[[], None] = lambda: None,
) -> None:
    """Run ``work(item)`` for each item, whose files are ``outputs(item)``.

    ``outputs`` also checks the item (a DltoolsError there: the item fails before any work).
    Then existing outputs are refused (unless ``args.force``), naming them all;
    with ``args.skip_existing`` items whose outputs all exist are skipped and a partial set is
    replaced. ``start()`` runs once before the first item. An item that fails has the
    outputs it wrote removed; with ``args.keep_going``
    the others still run and the failures are raised together at the end as one
    :class:`DltoolsError`.
    """
    failures: list[str] = []

    def failed(item: T, err: Exception | str) -> None:
        failures.append(f"{item}: {err}")
        print(f"failed: {item}: {err}", file=sys.stderr)

    plan: list[tuple[T, list[Path]]] = []
    for item in items:
        try:
            paths = list(outputs(item))
        except DltoolsError as err:
            if not args.keep_going:
                raise
            failed(item, err)
            continue
        if args.skip_existing and all(p.exists() for p in paths):
            print(f"{item}: outputs exist, skipped")
            continue
        plan.append((item, paths))
    replaceable = args.force or args.skip_existing
    ensure_new([p for _, paths in plan for p in paths], replaceable)
    if plan:
        start()  # the slow set-up (loading a model), once the inputs are known to be good
    for item, paths in plan:
        before = {p: p.stat().st_mtime_ns for p in paths if p.exists()}
        try:
            work(item)
        except Exception as err:
            for path in paths:  # what this item wrote goes; earlier files stay
                if path.exists() and before.get(path) != path.stat().st_mtime_ns:
                    path.unlink()
            if not args.keep_going:
                raise
            failed(item, err if isinstance(err, DltoolsError) else repr(err))
    if failures:
        listed = "\n  ".join(failures)
        raise DltoolsError(f"{len(failures)} of {len(items)} failed:\n  {listed}")


def require_input(value: object, flag: str, what: str) -> None:
    """DltoolsError if ``value`` (an option that replaced a file dialog of the original Tk-era
    script) was not given, saying so."""
    if value is None:
        raise DltoolsError(
            f"{flag} {what} is required: the original script's file dialog became the option "
            f"{flag} (no window opens; see --help)"
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
