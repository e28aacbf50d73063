"""Benchmark ``semseg_fullyconv/infer.py`` on generated GeoTIFFs of 25, 100 and 400 megapixels.

``--command infer-crf`` runs ``semseg_fullyconv/infer_crf.py`` instead (the network, then the
dense CRF; rasters larger than ``--block`` in windows with a halo).

For each size a square 3-band uint8 GeoTIFF (tiled, DEFLATE, UTM grid, nodata 0 with a black
collar) is made from a mirrored synthetic coastal scene, then ``infer.py`` runs on it in a
fresh process with its default options (1024-px windows, 256 overlap, label and overlay
GeoTIFFs). Reported per size: megapixels per second of the segmentation (from the time
``infer.py`` prints for the image, i.e. without its start-up), the whole process's wall time,
seconds per megapixel and the process's peak RSS (``wait4``). The baseline, measured in the same
run, is the network alone: the model applied to in-memory 1024-px windows, as many as the
tiling needs per megapixel, with no reading, blending or writing.

The model is the default architecture (MobileNetV2 1.0 U-Net, 6 classes) trained for one batch
from scratch on the demo data: weights do not change the speed.

    python bench/fcn.py                     # 25, 100 and 400 MP (about 15 minutes on 2 cores)
    python bench/fcn.py --sizes 25,100      # quicker
    python bench/fcn.py --command infer-crf --sizes 25,100
    python bench/fcn.py --command infer-crf --sizes 100 --block 20000   # in one piece
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"
SCENE = 2048  # the synthetic scene is mirrored in blocks of this size
COLLAR = 512  # black (nodata) columns on the left, as on an orthomosaic's edge
SCRIPTS = {"infer": "infer.py", "infer-crf": "infer_crf.py"}  # in semseg_fullyconv/


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="25,100,400", help="megapixels (comma-separated)")
    parser.add_argument("--tmp", help="folder for the rasters (default: a temporary folder)")
    parser.add_argument(
        "--command",
        choices=sorted(SCRIPTS),
        default="infer",
        help="the step 8 script to run (default: %(default)s)",
    )
    parser.add_argument(
        "--block",
        type=int,
        help="the script's --block: rasters larger than this are made in parts or windows "
        "(default: the script's own: 6144 for infer, 4096 for infer-crf)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="dltools-bench-fcn-", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        run = tmp / "run"
        _train(run)
        floor = _network_floor(run)
        print(f"network alone: {floor:.2f} MP/s", flush=True)
        rows = []
        for mp in sizes:
            raster = tmp / f"ortho_{mp}mp.tif"
            start = time.perf_counter()
            side = _make_raster(raster, mp)
            made = time.perf_counter() - start
            print(f"{mp} MP raster ({side} x {side}) made in {made:.0f} s", flush=True)
            found = _infer(run, raster, tmp / "out", SCRIPTS[args.command], args.block)
            rows.append({"mp": side * side / 1e6, **found})
            raster.unlink()
            for out in (tmp / "out").iterdir():
                out.unlink()
            print(_table(rows[-1:], floor), flush=True)
    print(f"\nsummary ({os.cpu_count()} cores, no GPU):")
    print(_table(rows, floor))
    return 0


def _train(run: Path) -> None:
    """A run with the default architecture, trained for one batch (weights do not matter)."""
    cmd = [sys.executable, "-m", "dltools", "fcn", "train", "--name", str(run)]
    cmd += ["--data-dir", str(DEMO / "images"), "--label-dir", str(DEMO / "labels")]
    cmd += ["--labeldefs", str(DEMO / "labeldefs.txt"), "--encoder-weights", "none"]
    cmd += ["--epochs", "1", "--steps-per-epoch", "1", "--tile-size", "256", "--val-fraction", "0"]
    subprocess.run(cmd, check=True, capture_output=True)


def _network_floor(run: Path, windows: int = 8) -> float:
    """MP/s of the image covered when the model runs on in-memory 1024-px windows alone."""
    from dltools.pipeline.fcn import Tiling, load_run

    tiling = Tiling()
    predict = load_run(run).predictor()
    batch = np.random.default_rng(0).integers(0, 255, (1, tiling.window, tiling.window, 3))
    batch = batch.astype(np.float32)
    predict(batch)  # trace
    start = time.perf_counter()
    for _ in range(windows):
        predict(batch)
    seconds = (time.perf_counter() - start) / windows
    step = tiling.window - tiling.overlap
    return step * step / 1e6 / seconds  # each window adds step x step new pixels


def _make_raster(path: Path, mp: int, strokes: bool = False) -> int:
    """A square GeoTIFF of about ``mp`` megapixels, written block by block; returns its side.
    With ``strokes``: the strokes of that raster instead (one band, 0 = none, k = class k,
    simulated inside the scene's labels), on the same grid."""
    import rasterio

    from dltools.io.geo import Window, create_raster, write_window
    from dltools.synthetic.scenes import coastal_scene, simulate_strokes

    side = round(math.sqrt(mp * 1e6))
    rgb, labels = coastal_scene(SCENE, SCENE, seed=1)
    rgb[rgb.max(axis=2) == 0] = 1  # black is nodata here
    if strokes:
        rgb = simulate_strokes(labels, seed=1)[..., None]
    profile = raster_profile(side, rgb.shape[2], None if strokes else 0)
    with rasterio.Env(GDAL_CACHEMAX=64), create_raster(path, profile) as dst:
        for row in range(0, side, SCENE):
            for col in range(0, side, SCENE):
                block = rgb[:: -1 if (row // SCENE) % 2 else 1, :: -1 if (col // SCENE) % 2 else 1]
                block = block[: side - row, : side - col].copy()
                block[:, : max(0, COLLAR - col)] = 0
                write_window(dst, block, Window(col, row, block.shape[1], block.shape[0]))
    return side


def raster_profile(side: int, count: int, nodata: int | None) -> dict:
    """The profile of a square uint8 GeoTIFF of ``side`` px on a UTM grid (tiled, DEFLATE)."""
    from rasterio.transform import from_origin

    return {
        "driver": "GTiff",
        "width": side,
        "height": side,
        "count": count,
        "dtype": "uint8",
        "nodata": nodata,
        "crs": "EPSG:32610",
        "transform": from_origin(600000, 4100000, 0.05, 0.05),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "BIGTIFF": "YES",
    }


def _infer(run: Path, raster: Path, out: Path, script: str, block: int | None) -> dict:
    """Run ``script`` on ``raster``; its wall time, the time it reports and its peak RSS."""
    cmd = [sys.executable, str(REPO / "semseg_fullyconv" / script), "--name", str(run)]
    cmd += ["--samples-dir", str(raster), "--output-dir", str(out), "--force"]
    cmd += [] if block is None else ["--block", str(block)]
    stdout, found = measured(cmd)
    found["seconds"] = float(re.search(r"\(([\d.]+) s\)", stdout).group(1))
    return found


def measured(cmd: list[str]) -> tuple[str, dict]:
    """Run ``cmd``; its standard output, and its wall time and peak RSS (``wait4``) as
    ``{"wall": s, "rss_gb": GB}``. A failure stops the benchmark with its output."""
    start = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        stdout = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{Path(cmd[1]).name} failed ({proc.returncode}): {stdout}")
    return stdout, {"wall": wall, "rss_gb": usage.ru_maxrss / 2**20}


def _table(rows: list[dict], floor: float) -> str:
    lines = [
        "| raster | MP/s | s per MP | vs network alone | process wall | peak RSS |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        rate = r["mp"] / r["seconds"]
        lines.append(
            f"| {r['mp']:.0f} MP | {rate:.2f} | {r['seconds'] / r['mp']:.2f} | "
            f"{floor / rate:.2f}x | {r['wall']:.0f} s | {r['rss_gb']:.2f} GB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
