"""``dltools label`` / ``create_groundtruth/label_1image_crf.py`` and ``label_1geotiff_crf.py``.

Step 2: paint sparse strokes per class (or replay them from a file); a fully connected CRF
turns them into a dense label image.
"""

from __future__ import annotations

import argparse
import os
import sys

from dltools.cli._common import add_force, reports_errors, require_input, show_progress
from dltools.cli._crf_options import add_crf_options, crf_params
from dltools.cli.polygonize import add_vector_options, vector_params, write_vector
from dltools.engines.crf import CRFParams
from dltools.errors import DltoolsError
from dltools.io.geo import is_georeferenced
from dltools.io.images import image_shape
from dltools.io.labels import read_classes
from dltools.pipeline.label import LabelOptions, groundtruth_paths, label_image
from dltools.pipeline.polygonize import vector_path

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
    parser.add_argument("-i", "--image", help="image to label (JPG/PNG/TIFF/GeoTIFF)" + dialog)
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
        "layer; e.g. drawn in QGIS) lines/polygons with a class-name attribute (GeoTIFFs only)",
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
    add_crf_options(parser, DEFAULTS)
    add_vector_options(parser)
    add_force(parser)
    return parser


def _run(args: argparse.Namespace, geotiff: bool) -> None:
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
    georeferenced = is_georeferenced(args.image)
    paths = groundtruth_paths(args.image, args.out_dir, georeferenced, args.confidence)
    label_raster = paths.geotiff or paths.label_png
    vector = vector_path(label_raster) if args.vector else None
    paths = label_image(
        args.image,
        classes,
        crf_params(args),
        args.working_scale,
        LabelOptions(
            out_dir=args.out_dir,
            doodles=args.doodles,
            class_field=args.class_field,
            paint=args.paint,
            window=args.window,
            brush=args.brush,
            confidence=args.confidence,
            georeferenced_only=geotiff,
            save_strokes=args.save_strokes,
            workers=args.workers,
            force=args.force,
        ),
        progress=show_progress,
        also_new=[vector] if vector else [],
    )
    if args.paint or not args.doodles:
        print(f"strokes saved to {paths.doodles}")
    if args.save_strokes:
        print(f"wrote {args.save_strokes}")
    for path in paths.outputs():
        print(f"wrote {path}")
    if vector is not None:
        confidence = paths.confidence if georeferenced else None  # PNG confidence is 0-255
        write_vector(label_raster, vector, classes.names, vector_params(args), confidence)


@reports_errors
def run(args: argparse.Namespace) -> None:
    _run(args, geotiff=False)


@reports_errors
def run_geotiff(args: argparse.Namespace) -> None:
    _run(args, geotiff=True)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def main_geotiff(argv: list[str] | None = None) -> int:
    return run_geotiff(build_parser(geotiff=True).parse_args(argv))
