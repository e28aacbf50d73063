"""``dltools polygonize``: a class raster -> a GeoPackage of polygons with attributes.

:func:`add_vector_options` and :func:`write_vector` also give ``--vector`` to the steps that
write label rasters (``label``, ``segment``, ``fcn infer``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dltools.cli._common import add_force, parse_args, reports_errors
from dltools.io.labels import read_labels
from dltools.io.outputs import ensure_new
from dltools.pipeline.polygonize import PolygonizeParams, polygonize_raster

FIELDS = (
    "Attributes: class (name), class_id (label value), area_m2 (area_px without a CRS), "
    "mean_confidence (with a probability raster), source (raster file name)."
)


def _add_shape_options(parser: argparse.ArgumentParser) -> None:
    defaults = PolygonizeParams()
    parser.add_argument(
        "--min-area",
        type=float,
        default=defaults.min_area,
        metavar="M2",
        help="regions smaller than this (m², pixels without a CRS) are first merged into their "
        "largest neighbour (sieve); 0 keeps every pixel (default: %(default)s)",
    )
    parser.add_argument(
        "--simplify",
        type=float,
        default=defaults.simplify,
        metavar="TOL",
        help="simplify outlines with this tolerance in CRS units (metres for UTM, degrees for "
        "EPSG:4326; pixels without a CRS), keeping them valid; 0 keeps the exact pixel edges "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--vector-window",
        type=int,
        default=defaults.window,
        metavar="PX",
        help="polygonise in windows of PX x PX pixels, merged exactly across their edges "
        "(bounded memory for any raster size; default: %(default)s)",
    )


def add_vector_options(parser: argparse.ArgumentParser) -> None:
    """``--vector`` and its shape options, for a step that writes label rasters."""
    group = parser.add_argument_group("vector output (--vector)")
    group.add_argument(
        "--vector",
        action="store_true",
        help="also polygonise each label raster into <label raster name>.gpkg (one polygon per "
        "region, holes kept, in the raster's CRS). " + FIELDS,
    )
    _add_shape_options(group)


def vector_params(args: argparse.Namespace) -> PolygonizeParams:
    """The polygonising settings of the options of :func:`add_vector_options`."""
    return PolygonizeParams(args.min_area, args.simplify, args.vector_window)


def write_vector(
    raster: str | os.PathLike,
    out: str | os.PathLike,
    names: list[str] | None,
    params: PolygonizeParams,
    confidence: str | os.PathLike | None = None,
    layer: str | None = None,
) -> None:
    """Polygonise a label raster into ``out``; print warnings (no CRS) and what was written."""
    summary = polygonize_raster(raster, out, names, confidence, params, layer)
    counts = ", ".join(f"{name} {n}" for name, n in summary.counts.items())
    print(f"wrote {Path(out)}: {sum(summary.counts.values())} polygons ({counts})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dltools polygonize",
        description="Polygonise a class raster (one band; value k = class k, 0 or nodata = "
        "none) into a GeoPackage layer: one polygon per 4-connected region of a class, holes "
        "kept, in the raster's CRS; rasters of any size are read in windows. " + FIELDS,
    )
    parser.add_argument("raster", metavar="RASTER", help="class raster (GeoTIFF, PNG, ...)")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT.gpkg", help="GeoPackage to write"
    )
    parser.add_argument(
        "-l",
        "--labels",
        metavar="labels.txt",
        help="class names, value k = line k (default: the names stored in the raster by "
        "dltools; an error if it has none)",
    )
    parser.add_argument(
        "--confidence",
        metavar="PROB.tif",
        help="probability raster on the same grid, for mean_confidence "
        "(e.g. <name>_ares_<t>_prob.tif; default: none, no mean_confidence field)",
    )
    parser.add_argument(
        "--layer", help="layer name in the GeoPackage (default: the raster's file name)"
    )
    _add_shape_options(parser)
    add_force(parser)
    return parser


@reports_errors
def run(args: argparse.Namespace) -> None:
    ensure_new([args.output], args.force)
    names = read_labels(args.labels) if args.labels else None
    write_vector(args.raster, args.output, names, vector_params(args), args.confidence, args.layer)


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(build_parser(), argv))
