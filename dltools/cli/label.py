"""``dltools label`` / ``create_groundtruth/label_1image_crf.py`` and ``label_1geotiff_crf.py``.

Step 2: paint sparse strokes per class (or replay them from a file); a fully connected CRF
turns them into a dense label image.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dltools.cli._common import (
    add_folder_options,
    add_force,
    parse_args,
    reports_errors,
    require_input,
    run_each,
    settings_from,
    show_progress,
)
from dltools.cli._crf_options import add_crf_options, crf_params
from dltools.cli.polygonize import add_vector_options, vector_params, write_vector
from dltools.engines.crf import CRFParams
from dltools.engines.uncertainty import MEASURES, WINDOW
from dltools.errors import DltoolsError
from dltools.io.discovery import find_images
from dltools.io.geo import is_georeferenced
from dltools.io.images import image_shape
from dltools.io.labels import read_classes
from dltools.io.pairs import find_label_files
from dltools.pipeline.label import (
    BLOCK,
    ORDERS,
    GroundTruthPaths,
    LabelOptions,
    groundtruth_paths,
    in_windows,
    label_image,
)
from dltools.pipeline.polygonize import vector_path
from dltools.progress import quiet
from dltools.scale.executor import Executor

DEFAULTS = CRFParams()  # the original dl_tools settings


def has_display() -> bool:
    """True if a window can open: always on macOS and Windows, else when DISPLAY or
    WAYLAND_DISPLAY is set (OpenCV's Qt aborts the process without one)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def build_parser(geotiff: bool = False) -> argparse.ArgumentParser:
    prog = "label_1geotiff_crf.py" if geotiff else "dltools label"
    what = "a GeoTIFF (outputs keep its CRS, transform and size)" if geotiff else "an image"
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            f"Label {what}: paint strokes for each class in OpenCV windows (or replay them with "
            "--doodles), then a fully connected CRF fills in a dense label image. Writes "
            "<name>_mres.mat, <name>_mres.png (figure), <name>_mres_label.png "
            "(class+1, 0 = nodata), <name>_report.txt and, for GeoTIFFs, <name>_mres_geo.tif "
            "(a COG with its colour table, class names and a QGIS <name>_mres_geo.qml style). "
            "Strokes are saved to <name>_doodles.png while you paint."
        ),
    )
    dialog = "; required (the original asked for it in a file dialog)"
    parser.add_argument(
        "-i",
        "--image",
        help="image to label (JPG/PNG/TIFF/GeoTIFF), or a folder of images to replay strokes "
        "on in a batch (with --doodles FOLDER)" + dialog,
    )
    parser.add_argument("-l", "--labels", help="labels.txt: one class per line" + dialog)
    parser.add_argument("-c", "--colors", help="colors.txt: one colour per class" + dialog)
    parser.add_argument(
        "-w",
        "--window",
        type=int,
        default=500,
        help="painting window size, in displayed pixels (default: %(default)s)",
    )
    parser.add_argument(
        "-s",
        "--working-scale",
        type=float,
        default=0.2,
        help="scale of the image while painting and for the CRF (0 < s <= 1); "
        "labels are upsampled to full size (default: %(default)s)",
    )
    parser.add_argument(
        "--doodles",
        metavar="FILE",
        help="strokes to replay without opening a window: a label image (0 = none, "
        "k = class k), a _mres.mat (its `sparse`), or GeoJSON / GeoPackage (.gpkg, first "
        "layer; e.g. drawn in QGIS) lines/polygons with a class-name attribute (GeoTIFFs only). "
        "With -i FOLDER: a folder of such files, each paired with its image by the pairing "
        "rule (its name contains the image's; README, step 3)",
    )
    parser.add_argument(
        "--save-strokes",
        metavar="FILE.gpkg",
        help="GeoTIFFs: also write the strokes used (painted or replayed) as a GeoPackage layer "
        "of polygons with the class name in --class-field, to edit in QGIS and replay with "
        "--doodles (default: not written)",
    )
    parser.add_argument(
        "--paint",
        action="store_true",
        help="with --doodles: open the painter starting from those strokes (resume "
        "an interrupted session from its <name>_doodles.png)",
    )
    parser.add_argument(
        "--class-field",
        default="class",
        help="GeoJSON / GeoPackage attribute that holds the class name (default: %(default)s)",
    )
    parser.add_argument("--out-dir", help="write outputs here instead of beside the image")
    parser.add_argument(
        "--confidence",
        action="store_true",
        help="also write the largest CRF posterior per pixel "
        "(<name>_mres_confidence.tif for GeoTIFFs, .png scaled 0-255 otherwise)",
    )
    parser.add_argument(
        "--brush",
        type=int,
        default=5,
        help="initial brush radius in displayed pixels; + and - change it (default: %(default)s)",
    )
    parser.add_argument("--workers", type=int, help="CRF processes (default: all cores)")
    parser.add_argument(
        "--block",
        type=int,
        default=BLOCK,
        metavar="PX",
        help="images whose longer side is over PX pixels are painted on an overview (the image "
        "shrunk by whole cells to at most PX pixels; the strokes are saved at its size) and "
        "labelled in windows of PX pixels after a coarse pass over the whole (bounded memory; "
        "the labels then go to <name>_mres_geo.tif, without georeferencing for a plain photo, "
        "not to a .mat or label PNG; default: %(default)s)",
    )
    add_crf_options(parser, DEFAULTS)
    guidance = parser.add_argument_group("labelling guidance")
    guidance.add_argument(
        "--check",
        type=int,
        nargs="?",
        const=5,
        default=0,
        metavar="K",
        help="cross-validate the labelling over the strokes in K folds (K = %(const)s when given "
        "without a number): label without each fold's strokes, score them; agreement per class "
        "with a 95%% interval on screen and in <name>_report.txt (default: no check)",
    )
    guidance.add_argument(
        "--uncertainty",
        nargs="?",
        const="margin",
        choices=MEASURES,
        help="also write <name>_uncertainty.tif/.png (1 - the gap between the two largest "
        f"posteriors, or their entropy) and <name>_next.csv/.geojson, the {WINDOW}-px windows most "
        "worth painting next (margin when given without a measure; default: not written)",
    )
    guidance.add_argument(
        "--order",
        choices=ORDERS,
        default="rows",
        help="the order in which the painter visits its windows: row by row, or most uncertain "
        "first from the strokes so far (keys u: show the uncertainty, r: re-rank) "
        "(default: %(default)s)",
    )
    add_vector_options(parser)
    batch = parser.add_argument_group("batch replay (-i FOLDER --doodles FOLDER)")
    add_folder_options(batch, dask="one image and its strokes each")
    add_force(parser)
    return parser


def _run(args: argparse.Namespace, geotiff: bool) -> None:
    if args.check == 1 or args.check < 0:
        raise DltoolsError(f"--check needs at least 2 folds, got {args.check}")
    if args.image is not None and Path(args.image).is_dir():
        return _run_batch(args, geotiff)
    if args.dask is not None or args.keep_going or args.skip_existing:
        raise DltoolsError("--dask, --keep-going and --resume are for batches: -i FOLDER")
    for value, flag, what in ((args.image, "-i", "IMAGE"), (args.labels, "-l", "labels.txt"),
                              (args.colors, "-c", "colors.txt")):  # fmt: skip
        require_input(value, flag, what)
    if args.paint and not args.doodles:
        raise DltoolsError("--paint resumes from --doodles FILE: name the file")
    classes = read_classes(args.labels, args.colors)
    image_shape(args.image)  # a missing or unreadable image is named before anything else
    if (args.paint or not args.doodles) and not has_display():
        raise DltoolsError(
            "painting opens a window but there is no display (DISPLAY is not set): run it on a "
            "desktop, or label without a window from strokes in a file with --doodles FILE"
        )
    if args.order == "uncertain" and args.doodles and not args.paint:
        raise DltoolsError("--order uncertain orders the painter's windows: add --paint")
    options = label_options(args, geotiff, args.doodles, args.force)
    paths = label_paths(args, args.image, options)
    label_raster = paths.geotiff or paths.label_png
    vector = vector_path(label_raster) if args.vector else None
    paths = label_image(
        args.image,
        classes,
        crf_params(args),
        args.working_scale,
        options,
        progress=show_progress,
        also_new=[vector] if vector else [],
        log=print,
    )
    if args.paint or not args.doodles:
        print(f"strokes saved to {paths.strokes}")
    if args.save_strokes:
        print(f"wrote {args.save_strokes}")
    for path in paths.outputs():
        print(f"wrote {path}")
    if vector is not None:
        write_vector(
            label_raster, vector, classes.names, vector_params(args), float_confidence(paths)
        )


def label_options(
    args: argparse.Namespace, geotiff: bool, strokes: str | Path | None, force: bool
) -> LabelOptions:
    """The :class:`LabelOptions` of ``args`` for one image whose strokes are ``strokes``
    (``geotiff``: the image must be georeferenced)."""
    return settings_from(
        LabelOptions,
        args,
        strokes=strokes,
        georeferenced_only=geotiff,
        workers=args.workers if args.dask is None else args.workers or 1,  # no pools in workers
        force=force,
        resume=args.skip_existing,
    )


def label_paths(
    args: argparse.Namespace, image: str | Path, options: LabelOptions
) -> GroundTruthPaths:
    """The files :func:`~dltools.pipeline.label.label_image` writes for ``image``."""
    return groundtruth_paths(
        image,
        args.out_dir,
        is_georeferenced(image),
        args.confidence,
        args.uncertainty is not None,
        in_windows(image, options),
    )


def float_confidence(paths: GroundTruthPaths) -> Path | None:
    """The confidence raster of ``paths`` if it holds values in [0, 1] (a ``.tif``), for the
    polygons' ``mean_confidence``; None for none or a PNG scaled 0-255."""
    confidence = paths.confidence
    return confidence if confidence is not None and confidence.suffix == ".tif" else None


def _run_batch(args: argparse.Namespace, geotiff: bool) -> None:
    """Replay the strokes of a folder on the images of a folder, one image per unit of work."""
    require_input(args.labels, "-l", "labels.txt")
    require_input(args.colors, "-c", "colors.txt")
    if args.doodles is None or not Path(args.doodles).is_dir():
        raise DltoolsError(
            "-i FOLDER replays strokes without a window: --doodles must name a folder of "
            "stroke files (painting works one image at a time)"
        )
    if args.paint or args.save_strokes:
        raise DltoolsError("--paint and --save-strokes work on one image (-i IMAGE), not a folder")
    classes = read_classes(args.labels, args.colors)
    images = find_images([args.image])
    pairs, unpaired = find_label_files(args.doodles, images)
    if not pairs:
        raise DltoolsError(f"{args.doodles}: no stroke file's name contains an image's name")
    if unpaired:
        listed = ", ".join(p.name for p in unpaired)
        print(f"{len(unpaired)} image(s) without strokes are left out: {listed}")
    strokes = dict(pairs)
    params = crf_params(args)
    rasters = {}

    def options(image: Path) -> LabelOptions:
        # force: run_each has refused or allowed existing outputs
        return label_options(args, geotiff, strokes[image], force=True)

    def windowed(image: Path) -> bool:
        return in_windows(image, options(image))

    def outputs(image: Path) -> list[Path]:
        if geotiff and not is_georeferenced(image):
            raise DltoolsError(f"{image} has no georeferencing: use label_1image_crf.py")
        paths = label_paths(args, image, options(image))
        rasters[image] = (paths.geotiff or paths.label_png, float_confidence(paths))
        vector = [vector_path(rasters[image][0])] if args.vector else []
        return [*paths.outputs(), *vector]

    def work(image: Path, executor: Executor) -> str:
        progress = show_progress if args.dask is None or executor.remote else quiet
        lines = [f"{image}: strokes {strokes[image]}"]
        paths = label_image(
            image,
            classes,
            params,
            args.working_scale,
            options(image),
            progress,
            log=lines.append,
            executor=executor,
        )
        lines += [f"  wrote {path}" for path in paths.outputs()]
        if args.vector:
            raster, confidence = rasters[image]
            write_vector(
                raster,
                vector_path(raster),
                classes.names,
                vector_params(args),
                confidence,
            )
        return "\n".join(lines)

    run_each([image for image, _ in pairs], outputs, work, args, in_client=windowed)


@reports_errors
def run(args: argparse.Namespace) -> None:
    _run(args, geotiff=False)


@reports_errors
def run_geotiff(args: argparse.Namespace) -> None:
    _run(args, geotiff=True)


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(build_parser(), argv))


def main_geotiff(argv: list[str] | None = None) -> int:
    return run_geotiff(parse_args(build_parser(geotiff=True), argv))
