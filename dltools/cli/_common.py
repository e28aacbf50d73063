"""What every step's command line shares: error reporting, common options, progress display."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import io
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from dltools.errors import DltoolsError, DltoolsWarning
from dltools.io.outputs import ensure_new, remove_staging
from dltools.raster.bands import BANDS_HELP, parse_bands, parse_range
from dltools.scale.executor import Executor, InProcess, open_executor

T = TypeVar("T")
S = TypeVar("S")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that ends with ``(default: X)`` where an option has a default its text does not
    already state: not for required options, options without a default, or on/off flags.
    A list is shown as it is typed (``50 30 10``; an empty one as ``none``)."""

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
        if isinstance(action.default, list | tuple):  # as typed: 50 30 10, or none
            return f"{text} (default: {' '.join(map(str, action.default)) or 'none'})"
        return f"{text} (default: %(default)s)"


def _show_warning(show: Callable) -> Callable:
    """``warnings.showwarning`` that prints a :class:`DltoolsWarning` as ``warning: ...`` on
    stderr and passes any other warning to ``show``."""

    def shown(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, DltoolsWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return shown


def reports_errors(run: Callable[[argparse.Namespace], int | None]) -> Callable[..., int]:
    """Wrap a step's ``run(args)`` so that user errors print one line and exit with status 2,
    and the library's :class:`DltoolsWarning` s one ``warning: ...`` line each, when raised
    (other warnings are shown as Python shows them)."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            with warnings.catch_warnings():  # puts back the filters and showwarning on exit
                warnings.simplefilter("always", DltoolsWarning)
                warnings.showwarning = _show_warning(warnings.showwarning)
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


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``; run as a script (``argv`` None: ``sys.argv``), its usage
    names the script (e.g. ``retile.py``) rather than the ``dltools`` subcommand."""
    if argv is None:
        parser.prog = Path(sys.argv[0]).name
    return parser.parse_args(argv)


def settings_from(kind: type[S], args: argparse.Namespace, **given: object) -> S:
    """The dataclass ``kind`` with every field the option of the same name in ``args``, but
    the fields ``given``."""
    named = {f.name for f in dataclasses.fields(kind)} - set(given)
    return kind(**{name: getattr(args, name) for name in named}, **given)


def add_dask(parser: argparse.ArgumentParser, units: str = "one image each") -> None:
    """``--dask``, whose help says what its ``units`` of work are."""
    parser.add_argument(
        "--dask",
        metavar="ADDRESS|local[:N]",
        help=f"run the units of work ({units}) on a Dask cluster: local[:N] starts a "
        "LocalCluster of N worker processes (default N: all cores) for this run; an address "
        "(tcp://host:8786) uses a running scheduler (see README, Scale out). Outputs are the "
        "same as without it (default: in this process, no cluster)",
    )


def add_folder_options(
    parser: argparse.ArgumentParser, what: str = "image", dask: str | None = None
) -> None:
    """``--keep-going``, ``--skip-existing`` / ``--resume`` and, with ``dask`` (what its units
    of work are), ``--dask``: runs over many inputs (see :func:`run_each`)."""
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help=f"when an {what} fails, report it and go on with the others; every failure is "
        "listed at the end and the exit status is 2 if there was any (default: stop at the "
        f"first failure). A failed {what} never leaves outputs behind",
    )
    parser.add_argument(
        "--skip-existing",
        "--resume",
        dest="skip_existing",
        action="store_true",
        help=f"resume an interrupted run: skip an {what} whose outputs all exist (outputs are "
        "written atomically, so one that exists is complete); one with only some of them (a "
        "killed run) is done again and they are replaced",
    )
    if dask:
        add_dask(parser, dask)


def dask_executor(args: argparse.Namespace) -> Executor:
    """The executor of ``args.dask`` (in-process without it), its cluster and dashboard
    printed; use it as a context manager (it stops a LocalCluster at the end)."""
    executor = open_executor(getattr(args, "dask", None))
    if executor.remote:
        dashboard = f", dashboard {executor.dashboard}" if executor.dashboard else ""
        print(f"Dask: {executor.name}{dashboard}", flush=True)
    return executor


def run_each(
    items: Sequence[T],
    outputs: Callable[[T], Sequence[Path]],
    work: Callable[[T, Executor], str | None],
    args: argparse.Namespace,
    start: Callable[[], None] = lambda: None,
    in_client: Callable[[T], bool] = lambda item: False,
    what: str = "images",
) -> None:
    """Run ``work(item, executor)`` for each item, whose files are ``outputs(item)``; print
    the text it returns.

    ``outputs`` also checks the item (a DltoolsError there: the item fails before any work).
    Then existing outputs are refused (unless ``args.force``), naming them all;
    with ``args.skip_existing`` items whose outputs all exist are skipped and a partial set is
    replaced. ``start()`` runs once before the first item (in-process runs: the slow set-up,
    such as loading a model, once the inputs are known to be good). An item that fails has the
    outputs it wrote removed; with ``args.keep_going`` the others still run and the failures
    are raised together at the end as one :class:`DltoolsError`.

    ``args.dask`` (when the step has the option) picks the executor (see
    :mod:`dltools.scale.executor`): each item is then one unit of work on the cluster, where
    ``work`` gets the in-process executor; items for which ``in_client(item)`` is True (a
    raster larger than a block) run ``work`` here instead, with the cluster's executor, to
    hand out their windows. A client-side progress bar counts the finished items.
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
    if not plan:
        return _raise_failures(failures, items)
    with dask_executor(args) as executor:
        if not executor.remote:
            start()  # the slow set-up (loading a model), once the inputs are known to be good
        befores = [{p: p.stat().st_mtime_ns for p in paths if p.exists()} for _, paths in plan]

        def ended(index: int, error: BaseException | None, text: str | None) -> None:
            item, paths = plan[index]
            if error is None:
                if text:
                    print(text)
                return
            for path in paths:  # what this item wrote goes; earlier files stay
                if path.exists() and befores[index].get(path) != path.stat().st_mtime_ns:
                    path.unlink()
            if not args.keep_going:
                raise error
            failed(item, error if isinstance(error, DltoolsError) else repr(error))

        here = [i for i, (item, _) in enumerate(plan) if not executor.remote or in_client(item)]
        for index in here:
            try:
                text = work(plan[index][0], executor)
            except Exception as err:
                ended(index, err, None)
            else:
                ended(index, None, text)
        units = sorted(set(range(len(plan))) - set(here))
        if units:
            outcomes = executor.outcomes(
                functools.partial(_unit, work), [plan[i][0] for i in units]
            )
            for outcome in show_progress(outcomes, total=len(units), desc=what, unit="image"):
                ended(units[outcome.index], outcome.error, outcome.value)
            remove_staging([p for i in units for p in plan[i][1]])
    _raise_failures(failures, items)


def _unit(work: Callable[[T, Executor], str | None], item: T) -> str | None:
    """One item as a unit of work on a Dask worker: its own windows run right there; what it
    prints (``--vector``'s lines) comes back to the client with its text."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        text = work(item, InProcess())
    return "\n".join(t for t in (text, printed.getvalue().rstrip("\n")) if t) or None


def _raise_failures(failures: list[str], items: Sequence[object]) -> None:
    if failures:
        listed = "\n  ".join(failures)
        raise DltoolsError(f"{len(failures)} of {len(items)} failed:\n  {listed}")


RANKING = "uncertainty_ranking.csv"  # --uncertainty: the images of a run, most uncertain first


def add_uncertainty(
    parser: argparse.ArgumentParser, base: str, posteriors: str, ranking: str = RANKING
) -> None:
    """``--uncertainty [margin|entropy]``: where to label next, for outputs named ``base``."""
    from dltools.engines.uncertainty import MEASURES, WINDOW

    parser.add_argument(
        "--uncertainty",
        nargs="?",
        const="margin",
        choices=MEASURES,
        help=f"also write, for each image, {base}_uncertainty.png (.tif for GeoTIFFs; 1 - the "
        f"gap between the two largest {posteriors}, or their entropy) and "
        f"{base}_next.csv/.geojson (its {WINDOW}-px windows, most uncertain first), and for "
        f"the run {ranking}: the images, most uncertain first, to label next (margin when "
        "given without a measure; default: not written)",
    )


@contextlib.contextmanager
def ranking_images(
    folder: str | Path,
    replace: bool,
    next_csvs: Callable[[], dict[Path, Path]],
    name: str = RANKING,
) -> Iterator[None]:
    """Rank a run's images for labelling: on the way out of the block, also after a failure,
    ``folder/name`` is written over the images of ``next_csvs()`` (``{image: its
    <name>_next.csv}``) whose ranked windows exist, most uncertain first (see
    :func:`dltools.io.vectors.write_image_ranking`), and printed. An existing ranking is
    refused before any work unless ``replace``."""
    from dltools.io.vectors import write_image_ranking

    ranking = Path(folder) / name
    ensure_new([ranking], replace)
    try:
        yield
    finally:
        done = {image: path for image, path in next_csvs().items() if path.exists()}
        if done:
            rows = write_image_ranking(done, ranking)
            names = ", ".join(Path(row["image"]).name for row in rows)
            print(f"label next (most uncertain first): {names}")
            print(f"wrote {ranking}")


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
            "; the choice is saved with the model (default: that rule)"
            if training
            else "; without it images must have the band count the model was trained on "
            "(default: the model's bands)"
        ),
    )
    if training:
        parser.add_argument(
            "--stretch",
            metavar="LOW,HIGH",
            help="images that are not 8-bit (16-bit, float) are scaled from LOW..HIGH to 0..255 "
            "for the network; saved with the model and applied at inference (default: each "
            "band's 2nd..98th percentile over a sample of windows of the training images)",
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
