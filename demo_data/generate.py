"""Generate the demo data: synthetic drone photos of a beach with their true labels, a
georeferenced orthomosaic with its label raster, and example strokes for the labelling step.

    python demo_data/generate.py [--out demo_data] [--force]

Everything comes from fixed seeds, so running it again writes the same files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from rasterio.transform import from_origin, xy
from rasterio.warp import transform as warp_transform

from dltools.errors import DltoolsError
from dltools.io.geo import Window, open_raster_writer, write_raster, write_window
from dltools.io.images import write_image
from dltools.io.labels import write_colors, write_labels
from dltools.io.outputs import atomic_path, ensure_new
from dltools.synthetic.scenes import (
    CLASS_COLORS,
    CLASS_NAMES,
    coastal_scene,
    simulate_strokes,
    stroke_paths,
)

PHOTO_SEEDS = range(102, 110)  # coast_01 ... coast_08
PHOTO_SHAPE = (512, 768)
ORTHO_SEED = 19  # a scene whose sea lies to the west, as at Marina
ORTHO_SIZE = 900
ORTHO_CRS = "EPSG:32610"  # WGS 84 / UTM zone 10N
ORTHO_ORIGIN = (606300.0, 4061900.0)  # top-left corner (m): Marina State Beach, Monterey Bay
PIXEL = 0.1  # m
STROKES_PER_CLASS = 3  # LineStrings per class in the GeoJSON


def photo_name(index: int) -> str:
    return f"coast_{index:02d}"


def output_paths(out: Path) -> list[Path]:
    """Every file this script writes under ``out``."""
    names = [photo_name(i) for i in range(1, len(PHOTO_SEEDS) + 1)]
    return [
        out / "labels.txt",
        out / "colors.txt",
        out / "labeldefs.txt",
        *(out / "images" / f"{name}.jpg" for name in names),
        *(out / "labels" / f"{name}_label.png" for name in names),
        out / "doodles" / "coast_01_doodles.png",
        out / "geotiff" / "coast_ortho.tif",
        out / "geotiff" / "coast_ortho_label.tif",
        out / "doodles" / "coast_ortho_doodles.geojson",
    ]


def write_classes(out: Path) -> None:
    """labels.txt, colors.txt (hex) and labeldefs.txt (``name, R, G, B``)."""
    write_labels(out / "labels.txt", CLASS_NAMES)
    write_colors(out / "colors.txt", CLASS_COLORS)
    with atomic_path(out / "labeldefs.txt") as tmp:
        tmp.write_text(
            "".join(
                f"{name}, {r}, {g}, {b}\n"
                for name, (r, g, b) in zip(CLASS_NAMES, CLASS_COLORS, strict=True)
            )
        )


def write_photos(out: Path) -> None:
    """The photos, their label images, and strokes drawn on the first one."""
    for index, seed in enumerate(PHOTO_SEEDS, 1):
        rgb, labels = coastal_scene(*PHOTO_SHAPE, seed=seed)
        name = photo_name(index)
        write_image(out / "images" / f"{name}.jpg", rgb)
        write_image(out / "labels" / f"{name}_label.png", labels)
        if index == 1:
            strokes = simulate_strokes(labels, fraction=0.02, width=3, margin=3, seed=seed)
            write_image(out / "doodles" / f"{name}_doodles.png", strokes)


def footprint(size: int, rng: np.random.Generator) -> np.ndarray:
    """An orthomosaic's valid area: a rotated, ragged quadrilateral, (size, size) bool."""
    corners = np.array(
        [[-1, -1], [0, -1.1], [1, -1], [1.1, 0], [1, 1], [0, 1.1], [-1, 1], [-1.1, 0]]
    )
    corners = corners * [0.40, 0.34] + rng.normal(0, 0.025, corners.shape)
    turn = np.radians(25)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    vertices = np.rint((corners @ rotation.T + 0.5) * size).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [vertices], 1)
    return mask.astype(bool)


def write_ortho(out: Path) -> None:
    """The orthomosaic GeoTIFF, its label GeoTIFF and strokes as GeoJSON lines in lon/lat."""
    rgb, labels = coastal_scene(ORTHO_SIZE, ORTHO_SIZE, seed=ORTHO_SEED)
    valid = footprint(ORTHO_SIZE, np.random.default_rng(ORTHO_SEED))
    np.maximum(rgb, 1, out=rgb)  # (0, 0, 0) is nodata
    rgb[~valid] = 0
    labels[~valid] = 0
    grid = {
        "width": ORTHO_SIZE,
        "height": ORTHO_SIZE,
        "crs": ORTHO_CRS,
        "transform": from_origin(*ORTHO_ORIGIN, PIXEL, PIXEL),
    }
    with open_raster_writer(
        out / "geotiff" / "coast_ortho.tif", grid, 3, np.uint8, nodata=0, predictor=2
    ) as dst:
        write_window(dst, rgb, Window(0, 0, ORTHO_SIZE, ORTHO_SIZE))
    write_raster(out / "geotiff" / "coast_ortho_label.tif", labels, like=grid, nodata=0)

    features = []
    taken = dict.fromkeys(range(1, len(CLASS_NAMES) + 1), 0)
    for k, points in stroke_paths(labels, fraction=0.02, margin=8, seed=ORTHO_SEED):
        if taken[k] == STROKES_PER_CLASS:
            continue
        taken[k] += 1
        points = np.vstack([points[:-1:4], points[-1:]])
        xs, ys = xy(grid["transform"], points[:, 1], points[:, 0])  # pixel centres
        lons, lats = warp_transform(ORTHO_CRS, "EPSG:4326", xs, ys)
        line = [[round(lon, 7), round(lat, 7)] for lon, lat in zip(lons, lats, strict=True)]
        features.append(
            {
                "type": "Feature",
                "properties": {"class": CLASS_NAMES[k - 1]},
                "geometry": {"type": "LineString", "coordinates": line},
            }
        )
    with atomic_path(out / "doodles" / "coast_ortho_doodles.geojson") as tmp:
        collection = {"type": "FeatureCollection", "features": features}
        tmp.write_text(json.dumps(collection, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder to write into (default: the folder of this script)",
    )
    parser.add_argument("--force", action="store_true", help="replace files that already exist")
    args = parser.parse_args(argv)
    try:
        ensure_new(output_paths(args.out), args.force)
    except DltoolsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_classes(args.out)
    write_photos(args.out)
    write_ortho(args.out)
    print(f"demo data written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
