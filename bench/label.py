"""Benchmark step 2 replay (``create_groundtruth/label_1geotiff_crf.py``) on generated
GeoTIFFs of 25 and 100 megapixels, labelled in windows against the same image held whole.

For each size a square 3-band uint8 GeoTIFF (tiled, DEFLATE, UTM grid, nodata 0 with a black
collar) is made from a mirrored synthetic coastal scene, with a one-band stroke GeoTIFF on its
grid (strokes simulated inside the scene's labels, 2% of the pixels). The script then replays
them in a fresh process at its defaults (``-s 0.2``, theta 60) twice: with ``--block``
(default 4096 px: windows with a margin, after a coarse pass read in windows) and with a block
larger than the image (whole, as before windows existed: the baseline, in the same run).
Reported per run: windows, the process's wall time, megapixels per second, its peak RSS
(``wait4``) and the share of pixels whose labels agree between the two runs.

    python bench/label.py                    # 25 and 100 MP (about 15 minutes on 2 cores)
    python bench/label.py --sizes 25 --block 2048
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fcn import _make_raster, measured

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="25,100", help="megapixels (comma-separated)")
    parser.add_argument("--block", type=int, default=4096, help="--block of the windowed runs")
    parser.add_argument("--tmp", help="folder for the rasters (default: a temporary folder)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dltools-bench-label-", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        for mp in (int(s) for s in args.sizes.split(",")):
            raster, strokes = tmp / f"ortho_{mp}mp.tif", tmp / f"ortho_{mp}mp_doodles.tif"
            side = _make_raster(raster, mp)
            _make_raster(strokes, mp, strokes=True)
            print(f"{mp} MP raster and strokes ({side} x {side}) made", flush=True)
            found = {}
            for mode, block in (("windows", args.block), ("whole", 2 * side)):
                found[mode] = _label(raster, strokes, tmp / mode, block)
                found[mode].update(mp=side * side / 1e6, mode=mode, block=block)
            name = raster.stem + "_mres_geo.tif"
            agreement = _agreement(tmp / "windows" / name, tmp / "whole" / name)
            for mode in found:
                rows.append({**found[mode], "agree": agreement})
                print(_table(rows[-1:]), flush=True)
            for path in [raster, strokes, *tmp.glob("*/*")]:
                path.unlink()
    print(f"\nsummary ({os.cpu_count()} cores):")
    print(_table(rows))
    return 0


def _label(raster: Path, strokes: Path, out: Path, block: int) -> dict:
    """Replay ``strokes`` on ``raster``; the windows, wall time and peak RSS of the process."""
    cmd = [sys.executable, str(REPO / "create_groundtruth" / "label_1geotiff_crf.py")]
    cmd += ["-i", str(raster), "-l", str(DEMO / "labels.txt"), "-c", str(DEMO / "colors.txt")]
    cmd += ["--doodles", str(strokes), "--out-dir", str(out), "--block", str(block)]
    _, found = measured(cmd)
    report = next(out.glob("*_report.txt")).read_text()
    windows = int(report.split("labelled in ")[1].split()[0]) if "labelled in" in report else 1
    return {**found, "windows": windows}


def _agreement(windows: Path, whole: Path) -> float:
    """Share of valid pixels with the same label in both runs, read block by block."""
    import rasterio

    same = total = 0
    with rasterio.open(windows) as a, rasterio.open(whole) as b:
        for _, window in a.block_windows(1):
            left, right = a.read(1, window=window), b.read(1, window=window)
            valid = right > 0
            same += int(np.count_nonzero(left[valid] == right[valid]))
            total += int(np.count_nonzero(valid))
    return same / max(total, 1)


def _table(rows: list[dict]) -> str:
    lines = [
        "| raster | run | `--block` | windows | process wall | MP/s | peak RSS | labels agree |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['mp']:.0f} MP | {r['mode']} | {r['block']} | {r['windows']} | "
            f"{r['wall']:.0f} s | {r['mp'] / r['wall']:.2f} | {r['rss_gb']:.2f} GB | "
            f"{r['agree']:.4f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
