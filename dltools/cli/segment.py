"""``dltools segment`` / ``semseg_crf/semseg_cnn_crf.py``: step 6, hybrid pixel segmentation.

A tile classifier labels a grid of tiles; a refiner (dense CRF, per-image MLP or random forest)
turns the confident tiles into pixel labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from dltools.cli._common import (
    add_bands,
    add_dask,
    add_folder_options,
    add_force,
    add_seed,
    add_uncertainty,
    band_options,
    parse_args,
    ranking_images,
    reports_errors,
    run_each,
    show_progress,
)
from dltools.cli.polygonize import add_vector_options, vector_params, write_vector
from dltools.errors import DltoolsError
from dltools.io.discovery import find_images
from dltools.io.geo import is_georeferenced, read_profile
from dltools.io.images import inference_bands
from dltools.io.labels import read_classes
from dltools.models.metadata import TILE, model_bands, model_tile_size
from dltools.pipeline.polygonize import vector_path
from dltools.progress import quiet
from dltools.scale.cache import Cached
from dltools.scale.executor import Executor

if TYPE_CHECKING:
    from dltools.models.loader import TileModel


def _add_options(parser: argparse.ArgumentParser, folders: bool = True) -> None:
    """The options of both parsers; ``folders``: runs over several images (--keep-going,
    --skip-existing), else one image whose windows may still run on Dask."""
    from dltools.engines.refine import DEFAULT_REFINER
    from dltools.pipeline.segment import BLOCK, METHODS

    parser.add_argument(
        "--refine",
        choices=METHODS,
        default=DEFAULT_REFINER,
        help="how tile labels become pixel labels: crf = dense CRF (the original's); mlp / rf = "
        "a per-image MLP / random forest trained on the confident tiles' pixels "
        "(CNN-Supervised Classification; mlp scored above crf on unseen images of both shared "
        "sets); none = the raw tile map (default: %(default)s)",
    )
    parser.add_argument("--out-dir", help="write outputs here instead of beside each image")
    add_uncertainty(parser, "<name>_ares_<tile>", "refined posteriors")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="tiles per predict call on the model (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="processes for the CRF / random forest (default: all cores; with --dask, 1 per "
        "worker)",
    )
    parser.add_argument(
        "--block",
        type=int,
        default=BLOCK,
        metavar="PX",
        help="images with a longer side are read, segmented and written in windows of PX "
        "pixels (bounded memory; the class map and probabilities then go to <name>_ares_<t>.tif "
        "and _prob.tif, not to a .mat, also for plain photos; default: %(default)s)",
    )
    add_bands(parser, training=False)
    if folders:
        add_folder_options(
            parser, dask="one image each, and each window of an image larger than --block"
        )
    else:
        add_dask(parser, "each window of an image larger than --block")
        parser.set_defaults(keep_going=False, skip_existing=False)
    add_seed(parser)
    add_vector_options(parser)
    add_force(parser)


COLORS_HELP = (
    "colors.txt (one matplotlib colour per line, in the order of the labels) or labeldefs.txt "
    "(name, R, G, B per line, matched by name)"
)
OUTPUTS = (
    "Writes <name>_ares_<TILE>.mat (sparse = tile classes + 1, 0 = none; class = 0-based refined "
    "labels; labels; preds = class probabilities at working scale), <name>_ares_<TILE>.png "
    "(image, tile classes shaded by probability, refined labels) and, for GeoTIFFs, "
    "<name>_ares_<TILE>.tif (class + 1, nodata 0) and <name>_ares_<TILE>_prob.tif "
    "(probability of the chosen class), on the input's grid: COGs with QGIS .qml styles."
)


def build_parser() -> argparse.ArgumentParser:
    """``dltools segment``: options, several images or folders."""
    parser = argparse.ArgumentParser(
        prog="dltools segment",
        description="Segment images with a tile classifier refined to pixels (step 6). " + OUTPUTS,
    )
    parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="images or folders of images (label rasters and *_ares*/*_mres* files there are "
        "skipped)",
    )
    parser.add_argument(
        "-m", "--model", required=True, help="tile model: SavedModel folder, .keras or .pb"
    )
    parser.add_argument("-l", "--labels", required=True, help="labels file written with the model")
    parser.add_argument("-c", "--colors", required=True, help=COLORS_HELP)
    parser.add_argument(
        "-t",
        "--tile",
        type=int,
        help="tile size in pixels (default: the side of the tiles the model was trained on, "
        f"recorded by retrain; {TILE} for models that do not record it)",
    )
    parser.add_argument(
        "--prob-thres",
        type=float,
        default=0.5,
        help="tiles whose top probability is below this are left unknown for the refiner "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--prob",
        type=float,
        default=0.5,
        help="with --refine crf: the CRF's confidence in the tile labels, 0-1 (the other "
        "refiners learn from the tile labels and ignore it; default: %(default)s)",
    )
    parser.add_argument(
        "--decim",
        type=int,
        default=1,
        help="classify every DECIM-th tile (default: %(default)s, all)",
    )
    parser.add_argument(
        "--fct",
        type=float,
        default=0.25,
        help="working scale of the refiner, 0 < FCT <= 1 (default: %(default)s)",
    )
    _add_options(parser)
    return parser


def build_original_parser() -> argparse.ArgumentParser:
    """``semseg_cnn_crf.py``: the original's positional arguments, in its order."""
    parser = argparse.ArgumentParser(
        prog="semseg_cnn_crf.py",
        description="Segment one image with a tile classifier refined to pixels (step 6), "
        "e.g. semseg_cnn_crf.py photo.jpg tile_model labels.txt colors.txt 96 0.5 0.5 8 0.25. "
        + OUTPUTS,
    )
    parser.add_argument("image", metavar="IMAGE", help="image or GeoTIFF to segment")
    parser.add_argument("model", metavar="MODEL", help="SavedModel folder, .keras or .pb")
    parser.add_argument("labels", metavar="LABELS", help="labels file written with the model")
    parser.add_argument("colors", metavar="COLORS", help=COLORS_HELP)
    parser.add_argument(
        "tile", metavar="TILE", type=int, help="tile size in pixels (96 in the original)"
    )
    parser.add_argument(
        "prob_thres",
        metavar="PROB_THRES",
        type=float,
        help="tiles whose top probability is below this are left unknown for the refiner",
    )
    parser.add_argument(
        "prob",
        metavar="PROB",
        type=float,
        help="with --refine crf: the CRF's confidence in the tile labels, 0-1 (ignored by the "
        "other refiners)",
    )
    parser.add_argument(
        "decim", metavar="DECIM", type=int, help="classify every DECIM-th tile (1: all)"
    )
    parser.add_argument(
        "fct", metavar="FCT", type=float, help="working scale of the refiner (0 < FCT <= 1)"
    )
    _add_options(parser, folders=False)
    return parser


def load_checked_model(path: str, names: tuple[str, ...], labels_path: str) -> TileModel:
    """The tile model at ``path``, checked against the classes of ``labels_path`` (loaded once
    per process through :class:`~dltools.scale.cache.Cached`: once per Dask worker)."""
    from dltools.models.loader import load_model  # TensorFlow: once the inputs are good

    model = load_model(path)
    model.check_labels(list(names), labels_path)
    return model


@reports_errors
def run(args: argparse.Namespace) -> None:
    from dltools.pipeline.segment import SegmentParams, needs_windows, segment_file, segment_paths

    images = find_images(args.images)
    if args.tile is None:
        args.tile = model_tile_size(args.model)
    params = SegmentParams(
        tile=args.tile,
        prob_thres=args.prob_thres,
        prob=args.prob,
        decim=args.decim,
        fct=args.fct,
        refine=args.refine,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    if args.block < args.tile:
        raise DltoolsError(f"--block {args.block} must be at least the tile size {args.tile}")
    names, colors = read_classes(args.labels, args.colors)
    bands, _ = band_options(args)
    model_choice = model_bands(args.model)
    model = Cached(load_checked_model, (str(args.model), tuple(names), str(args.labels)))
    paths, choices, vectors = {}, {}, {}

    def outputs(image: Path) -> list[Path]:
        choices.update(inference_bands(model_choice, [image], bands, args.model))
        paths[image] = segment_paths(
            image, args.tile, args.out_dir, args.block, args.uncertainty is not None
        )
        if not args.vector:
            return paths[image].outputs()
        if not is_georeferenced(image):
            raise DltoolsError(
                "--vector polygonises the label GeoTIFF, which only georeferenced images get; "
                f"not georeferenced: {image}"
            )
        vectors[image] = vector_path(paths[image].geotiff)
        return [*paths[image].outputs(), vectors[image]]

    def windowed(image: Path) -> bool:
        profile = read_profile(image)
        return needs_windows((profile["height"], profile["width"]), args.block)

    def work(image: Path, executor: Executor) -> str:
        out = paths[image]
        summary = segment_file(
            image,
            model,
            names,
            colors,
            params,
            out,
            args.block,
            args.workers if args.dask is None else args.workers or 1,  # no pools in workers
            show_progress if args.dask is None or executor.remote else quiet,
            choices[image],
            executor,
            resume=args.skip_existing,
            uncertainty=args.uncertainty or "margin",
        )
        fractions = ", ".join(f"{name} {share:.3f}" for name, share in summary.fractions.items())
        if args.vector:
            write_vector(out.geotiff, vectors[image], names, vector_params(args), out.probability)
        return "\n".join(
            [
                f"{image}: tiles of {args.tile} px, refined by {args.refine}",
                f"  {summary.tiles} tiles, {summary.classified} classified, {summary.confident} "
                f"confident (>= {args.prob_thres}); {summary.windows} window(s), "
                f"{summary.seconds:.1f} s",
                f"  class fractions: {fractions}",
                *(f"  wrote {path}" for path in out.outputs()),
            ]
        )

    if args.uncertainty is None:
        return run_each(images, outputs, work, args, model, windowed)
    folder = args.out_dir or images[0].parent

    def next_csvs() -> dict[Path, Path]:
        return {image: p.next_csv for image, p in paths.items()}

    with ranking_images(folder, args.force or args.skip_existing, next_csvs):
        run_each(images, outputs, work, args, model, windowed)


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(build_parser(), argv))


def main_original(argv: list[str] | None = None) -> int:
    args = parse_args(build_original_parser(), argv)
    args.images = [args.image]
    return run(args)
