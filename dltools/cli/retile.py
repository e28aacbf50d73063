"""``dltools retile`` / ``create_library/retile.py``: step 3, labelled images -> class tiles."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dltools.cli._common import (
    add_bands,
    add_dask,
    add_force,
    add_label_colors,
    add_seed,
    band_options,
    dask_executor,
    label_classes,
    parse_args,
    reports_errors,
    require_input,
    show_progress,
)
from dltools.errors import DltoolsError
from dltools.io.discovery import find_labelled_images
from dltools.pipeline.retile import (
    DEFAULTS,
    LEGACY,
    LEGACY_TILE,
    MAX_RATIO,
    MIN_TILES_TO_THIN,
    PURITY,
    TILE_SIZES,
    choose_tile_size,
    class_widths,
    library_folder,
    retile,
)
from dltools.scale.executor import Executor


def tile_size(
    args: argparse.Namespace,
    pairs: list[tuple[Path, Path]],
    class_names: list[str] | None,
    colors: np.ndarray | None,
    executor: Executor | None,
) -> int:
    """-t; or 96 with --legacy; or the size :func:`choose_tile_size` picks from the class
    widths of the label maps, printed with them."""
    if args.tile is not None or args.legacy:
        return LEGACY_TILE if args.tile is None else args.tile
    widths = class_widths(
        pairs, class_names, colors, args.strict, args.keep_going, executor, show_progress
    )
    size = choose_tile_size(widths)
    listed = ", ".join(f"{name} {width:g}" for name, width in widths.items())
    print(
        f"tile size {size} px, chosen from the label maps (-t sets it): median class widths "
        f"{listed} px"
    )
    return size


def _class_purity(text: str) -> dict[str, float]:
    found = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            found[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected NAME=A pairs separated by commas, got {text!r}"
            ) from None
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dltools retile",
        description=(
            "Cut the labelled images of DIR into square tiles of one class each, for training a "
            "tile classifier. Labels are <name>_mres.mat files (step 2) or label rasters "
            "(one band; 0 or nodata = unlabelled, value k = class k of -l labels.txt) or colour "
            "masks (RGB or palette PNGs in the colours of --labeldefs), found beside the images "
            "or in --label-dir: a file is the label of the image whose name it contains, "
            "ignoring case and everything but letters and digits (StMarg_26607.jpg <- "
            "SCLS_StMarg26607.tif, a.jpg <- a_mres.mat or a_label.png). A window is kept when "
            "one class covers more than -a of it (unlabelled pixels count against it). Writes "
            "OUT/tile_<t>/<class>/<image>_<row>_<col>.jpg and OUT/tile_<t>/tiles.csv. Big "
            "GeoTIFFs are read block by block."
        ),
    )
    parser.add_argument(
        "-i",
        "--input",
        dest="folder",
        metavar="DIR",
        help="folder of the images and labels; required (the original asked for it in a file "
        "dialog)",
    )
    sizes = ", ".join(map(str, TILE_SIZES))
    parser.add_argument(
        "-t",
        "--tile",
        type=int,
        metavar="T",
        help="tile size in pixels (default: chosen from the label maps, the largest of "
        f"{sizes} px whose half every class's median width reaches, else {min(TILE_SIZES)}, so "
        f"thin classes such as roads still get pure tiles; {LEGACY_TILE} with --legacy)",
    )
    parser.add_argument(
        "-a",
        "--purity",
        type=float,
        metavar="A",
        help="keep a tile when one class covers more than this fraction of it, so mixed tiles "
        f"teach their main class (default: {PURITY:g}; {LEGACY['min_purity']:g} with --legacy)",
    )
    parser.add_argument(
        "-b",
        "--keep",
        type=float,
        default=1.0,
        metavar="B",
        help=(
            f"keep a random fraction B of the tiles of each class that has more than "
            f"{MIN_TILES_TO_THIN} (default: %(default)s, all)"
        ),
    )
    parser.add_argument(
        "--class-purity",
        metavar="NAME=A,...",
        type=_class_purity,
        help="class-aware purity: thresholds of the named classes, in place of -a (e.g. "
        "road=0.3 for a thin class that rarely fills a tile to -a); a window goes to the class "
        "that exceeds its threshold by the largest ratio",
    )
    parser.add_argument(
        "--max-ratio",
        type=float,
        metavar="R",
        help="class-aware thinning: keep at most R times as many tiles of a class as the rarest "
        f"class has (at least {MIN_TILES_TO_THIN}), so common classes are thinned and rare ones "
        f"kept whole; 0 keeps every tile (default: {MAX_RATIO:g}; 0 with --legacy)",
    )
    parser.add_argument(
        "--legacy",
        action="store_true",
        help=f"tile as dl_tools did in 2018: -t {LEGACY_TILE}, -a {LEGACY['min_purity']:g} and no "
        "class-aware thinning, unless -t, -a or --max-ratio is given (for comparison; default: "
        "off)",
    )
    parser.add_argument(
        "--stride", type=int, metavar="S", help="pixels between windows (default: half the tile)"
    )
    parser.add_argument(
        "--label-dir", metavar="DIR", help="folder of the label files (default: the image folder)"
    )
    parser.add_argument(
        "-o", "--out-dir", metavar="OUT", help="where tile_<t>/ is made (default: DIR)"
    )
    add_label_colors(parser)
    add_bands(parser, training=True)
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="leave out images that cannot be read (none of their tiles) and make the library "
        "of the others; they are listed at the end and the exit status is 2 (default: stop at "
        "the first, writing nothing)",
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="if OUT/tile_<t> exists (a finished earlier run; libraries appear whole or not at "
        "all), do nothing",
    )
    add_dask(parser, "one labelled image each")
    add_seed(parser)
    add_force(parser)
    return parser


@reports_errors
def run(args: argparse.Namespace) -> None:
    require_input(args.folder, "-i", "DIR")
    bands, stretch = band_options(args)
    class_names, colors = label_classes(args)
    pairs, unlabelled = find_labelled_images(args.folder, args.label_dir)
    if unlabelled:
        print(f"{len(unlabelled)} image(s) without a label file, not tiled:")
        for image in unlabelled:
            print(f"  {image}")
    out = Path(args.out_dir or args.folder)
    given = {"min_purity": args.purity, "max_ratio": args.max_ratio}
    settings = {
        key: (LEGACY if args.legacy else DEFAULTS)[key] if value is None else value
        for key, value in given.items()
    }
    with dask_executor(args) as executor:
        size = tile_size(args, pairs, class_names, colors, executor)
        if args.skip_existing and library_folder(out, size).is_dir():
            print(f"{library_folder(out, size)} exists, skipped")
            return
        print(f"tiling {len(pairs)} labelled image(s) into {library_folder(out, size)}")
        library = retile(
            pairs,
            out,
            size=size,
            **settings,
            keep=args.keep,
            stride=args.stride,
            class_purity=args.class_purity,
            class_names=class_names,
            colors=colors,
            strict=args.strict,
            seed=args.seed,
            force=args.force,
            progress=show_progress,
            bands=bands,
            stretch=stretch,
            keep_going=args.keep_going,
            executor=executor,
        )
    print(f"network input: {library.bands.describe()}")
    for folder in library.stale:
        print(f"removed {folder}, the staging folder of a run that was killed")
    print("tiles per class:")
    for name, count in library.counts().items():
        print(f"  {name:<20} {count:6d}")
    print(f"  {'total':<20} {len(library.tiles):6d}")
    if library.failures:
        listed = "\n  ".join(f"{image}: {err}" for image, err in library.failures.items())
        raise DltoolsError(
            f"{len(library.failures)} image(s) could not be tiled and were left out:\n  {listed}"
        )


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(build_parser(), argv))
