"""``dltools label`` / ``create_groundtruth/label_1image_crf.py`` and ``label_1geotiff_crf.py``.

Step 2: paint sparse strokes per class (or replay them from a file); a fully connected CRF
turns them into a dense label image.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dltools.cli._common import add_force, reports_errors
from dltools.cli._crf_options import add_crf_options, crf_params
from dltools.cli.polygonize import add_vector_options, vector_params, write_vector
from dltools.engines.crf import CRFParams, label_from_strokes
from dltools.errors import DltoolsError
from dltools.io.geo import is_georeferenced, read_nodata_mask, read_profile
from dltools.io.images import read_image
from dltools.io.labels import read_classes
from dltools.io.outputs import ensure_new
from dltools.io.strokes import read_doodles, write_stroke_layer
from dltools.pipeline.label import GroundTruth, groundtruth_paths, write_groundtruth
from dltools.pipeline.polygonize import vector_path

DEFAULTS = CRFParams()  # the original dl_tools settings


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
    parser.add_argument(
        "-i", "--image", required=True, help="image to label (JPG/PNG/TIFF/GeoTIFF)"
    )
    parser.add_argument("-l", "--labels", required=True, help="labels.txt: one class per line")
    parser.add_argument("-c", "--colors", required=True, help="colors.txt: one colour per class")
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
    if not 0 < args.working_scale <= 1:
        raise DltoolsError(f"-s must be in (0, 1], got {args.working_scale}")
    if args.paint and not args.doodles:
        raise DltoolsError("--paint resumes from --doodles FILE: name the file")
    params = crf_params(args)
    names, colors = read_classes(args.labels, args.colors)
    image_path = Path(args.image)
    georeferenced = is_georeferenced(image_path)
    if geotiff and not georeferenced:
        raise DltoolsError(
            f"{image_path} has no georeferencing: use label_1image_crf.py for plain images"
        )
    profile = read_profile(image_path) if georeferenced else None
    paths = groundtruth_paths(image_path, args.out_dir, georeferenced, args.confidence)
    label_raster = paths.geotiff or paths.label_png
    vector = vector_path(label_raster) if args.vector else None
    if args.save_strokes and profile is None:
        raise DltoolsError(f"--save-strokes: {image_path} is not georeferenced")
    extra = [p for p in (vector, args.save_strokes) if p]
    ensure_new([*paths.outputs(), *extra], force=args.force)
    image = read_image(image_path)
    nodata = read_nodata_mask(image_path) if profile and profile.get("nodata") is not None else None
    shape = image.shape[:2]
    doodles = (
        read_doodles(args.doodles, shape, names, georef=profile, class_field=args.class_field)
        if args.doodles
        else None
    )
    seconds = {"painting": 0.0}
    if doodles is None or args.paint:
        from dltools.gui.painter import paint_strokes  # opens windows: only when painting

        resuming = args.doodles and Path(args.doodles).resolve() == paths.doodles.resolve()
        if not resuming:
            ensure_new([paths.doodles], force=args.force)
        start = time.perf_counter()
        sparse = paint_strokes(
            image,
            names,
            colors,
            scale=args.working_scale,
            window=args.window,
            initial=doodles,
            autosave_path=paths.doodles,
            brush=args.brush,
        )
        seconds["painting"] = time.perf_counter() - start
        print(f"strokes saved to {paths.doodles}")
    else:
        sparse = doodles
    if not sparse.any():
        raise DltoolsError("no strokes: paint at least one class (nothing was written)")
    if args.save_strokes:
        count = write_stroke_layer(args.save_strokes, sparse, names, profile, args.class_field)
        print(f"wrote {args.save_strokes} ({count} stroke polygons)")
    start = time.perf_counter()
    class_map, preds = label_from_strokes(
        image,
        sparse,
        len(names),
        scale=args.working_scale,
        params=params,
        nodata=nodata,
        workers=args.workers,
        progress=True,
    )
    seconds["computing"] = time.perf_counter() - start
    gt = GroundTruth(
        image_path=image_path,
        image=image,
        sparse=sparse,
        class_map=class_map,
        preds=preds,
        class_names=names,
        colors=colors,
        params=params,
        scale=args.working_scale,
        profile=profile,
        seconds=seconds,
    )
    write_groundtruth(gt, paths)
    for path in paths.outputs():
        print(f"wrote {path}")
    if vector is not None:
        confidence = paths.confidence if georeferenced else None  # PNG confidence is 0-255
        write_vector(label_raster, vector, names, vector_params(args), confidence)


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
