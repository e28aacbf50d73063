"""Benchmark ``dltools polygonize``: peak memory and time window by window, and the result
against a whole-raster run.

A synthetic class raster (5 classes, 1-pixel specks, a nodata border) is written as a COG,
window by window. Two scenes (``--scene``):

- ``patches`` (default): classes 1-4 from the signs of two smooth random fields, a patchwork
  of blobs in which no class spans the raster;
- ``network``: one smooth field cut into 5 bands of values, so the middle band is a thin
  network around every blob and one polygon spans the whole raster (at 20,000 px: about 2.7
  million vertices and 11,400 holes), the worst case for merging pieces across windows.

Each polygonisation runs in a child process, so its peak RSS (``resource.getrusage``) is its
own:

1. ``--size`` x ``--size`` (default 20,000 x 20,000) in windows of ``--window`` px;
2. a ``--small`` x ``--small`` corner of the same field, whole (one window) and in windows of
   ``--small-window`` px. The two layers must hold the same polygons, one for one
   (topologically equal, same class), and both must rasterise back to the raster exactly.

Prints seconds, peak RSS and polygon counts, and the comparison.

    python bench/polygonize.py                       # 20,000 x 20,000 (see bench/README.md)
    python bench/polygonize.py --size 8000 --small 3000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NAMES = ["water", "sand", "gravel", "trees", "road"]
CELL = 150  # pixels per cell of the random field: the scale of the blobs
SPECKS = 2e-4  # fraction of pixels set to a random class
BORDER = 50  # nodata rows and columns along the top and left edges
BLOCK = 2048  # rows and columns generated and written at a time


def class_window(
    fields: np.ndarray, scene: str, row: int, col: int, height: int, width: int
) -> np.ndarray:
    """(height, width) uint8 classes 1..5 (0 = nodata) of the synthetic raster at
    (``row``, ``col``), from ``fields`` (2, n, n) float64 in [0, 1) interpolated bilinearly
    (see the module docstring), with specks; the same pixels wherever the raster is cut."""
    from scipy.ndimage import map_coordinates

    rows = np.arange(row, row + height)
    cols = np.arange(col, col + width)
    grid = np.meshgrid(rows / CELL, cols / CELL, indexing="ij")
    first = map_coordinates(fields[0], grid, order=1)
    if scene == "network":
        classes = np.digitize(first, [0.3, 0.45, 0.55, 0.7]).astype(np.uint8) + 1
    else:
        second = map_coordinates(fields[1], grid, order=1)
        classes = (1 + 2 * (first > 0.5) + (second > 0.5)).astype(np.uint8)
    noise = np.random.default_rng([row, col])
    specks = noise.random(classes.shape) < SPECKS
    classes[specks] = noise.integers(1, len(NAMES) + 1, int(specks.sum()))
    classes[(rows < BORDER)[:, None] | (cols < BORDER)[None, :]] = 0
    return classes


def write_synthetic(path: Path, size: int, scene: str, seed: int = 0) -> None:
    """A ``size`` x ``size`` synthetic class COG of ``scene`` in a projected CRS (0.1 m
    pixels)."""
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    from dltools.io.cog import open_cog_writer
    from dltools.io.geo import write_window
    from dltools.io.labels import Classes, default_colors
    from dltools.raster.windows import iter_windows

    fields = np.random.default_rng(seed).random((2, *(max(size, 20_000) // CELL + 2,) * 2))
    like = {
        "height": size,
        "width": size,
        "crs": CRS.from_epsg(32610),
        "transform": Affine(0.1, 0.0, 606300.0, 0.0, -0.1, 4061900.0),
    }
    classes = Classes(NAMES, default_colors(len(NAMES)))
    with open_cog_writer(path, like, np.uint8, 0, classes) as dst:
        for window in iter_windows(size, size, BLOCK):
            origin = (window.row_off, window.col_off)
            values = class_window(fields, scene, *origin, window.height, window.width)
            write_window(dst, values, window)


def child(raster: str, out: str, window: int) -> None:
    """Polygonise in this process; print seconds, peak RSS and polygon count as JSON."""
    from dltools.pipeline.polygonize import PolygonizeParams, polygonize_raster

    start = time.perf_counter()
    summary = polygonize_raster(raster, out, params=PolygonizeParams(window=window))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"seconds": seconds, "peak": peak, "polygons": sum(summary.counts.values())}))


def measure(raster: Path, out: Path, window: int) -> dict:
    """Run :func:`child` in a fresh interpreter and return its measurements."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(raster), str(out), str(window)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"the polygonisation of {raster} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_polygons(a: Path, b: Path) -> tuple[int, int]:
    """(polygons of ``a`` with exactly one topologically equal polygon of the same class in
    ``b``, polygons of ``a``)."""
    import shapely

    from dltools.io.vectors import read_layer

    geom_a, fields_a, _ = read_layer(a)
    geom_b, fields_b, _ = read_layer(b)
    tree = shapely.STRtree(geom_b)
    matched = 0
    for geometry, value in zip(geom_a, fields_a["class_id"], strict=True):
        hits = [
            i
            for i in tree.query(geometry, "covers")
            if fields_b["class_id"][i] == value and shapely.equals(geom_b[i], geometry)
        ]
        matched += len(hits) == 1
    return matched, len(geom_a)


def rasterises_back(gpkg: Path, raster: Path) -> float:
    """Fraction of the raster's pixels that the layer's polygons, burnt by class_id, give."""
    import rasterio
    import rasterio.features

    from dltools.io.vectors import read_layer

    geometry, fields, _ = read_layer(gpkg)
    with rasterio.open(raster) as src:
        values, transform = src.read(1), src.transform
    shapes = zip(geometry, fields["class_id"].tolist(), strict=True)
    back = rasterio.features.rasterize(shapes, values.shape, transform=transform, dtype="uint8")
    return float((back == values).mean())


def row(name: str, result: dict) -> str:
    return (
        f"{name:<34} {result['seconds']:>8.1f} s {result['peak'] / 2**20:>8.0f} MB "
        f"{result['polygons']:>10,} polygons"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20_000, help="side of the big raster")
    parser.add_argument("--window", type=int, default=4096, help="its window side")
    parser.add_argument("--small", type=int, default=4000, help="side of the compared raster")
    parser.add_argument("--small-window", type=int, default=1000, help="its window side")
    parser.add_argument("--scene", choices=("patches", "network"), default="patches")
    parser.add_argument(
        "--child", nargs=3, metavar=("RASTER", "OUT", "WINDOW"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    with tempfile.TemporaryDirectory(prefix="dltools-bench-polygonize-") as tmp:
        folder = Path(tmp)
        small = folder / "small.tif"
        write_synthetic(small, args.small, args.scene)
        whole = measure(small, folder / "whole.gpkg", args.small)
        windows = measure(small, folder / "windows.gpkg", args.small_window)
        matched, total = same_polygons(folder / "whole.gpkg", folder / "windows.gpkg")
        print(f"scene {args.scene}\n{args.small} x {args.small} raster")
        print(row("  whole (one window)", whole))
        print(row(f"  windows of {args.small_window}", windows))
        print(
            f"  same polygons: {matched:,} of {total:,} whole-raster polygons have exactly one "
            f"equal polygon in the windowed layer ({windows['polygons']:,} polygons there)"
        )
        for name in ("whole", "windows"):
            share = rasterises_back(folder / f"{name}.gpkg", small)
            print(f"  {name}: rasterised back, {100 * share:.4f}% of pixels equal")
        big = folder / "big.tif"
        start = time.perf_counter()
        write_synthetic(big, args.size, args.scene)
        print(f"{args.size} x {args.size} raster (written in {time.perf_counter() - start:.0f} s)")
        result = measure(big, folder / "big.gpkg", args.window)
        print(row(f"  windows of {args.window}", result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
