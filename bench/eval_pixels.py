"""Benchmark step 7 (``dltools eval-pixels``) on label GeoTIFFs of 25 to 400 megapixels: peak
memory and time, against reading both rasters whole (what eval-pixels did before it read strips).

For each size a manual label GeoTIFF (one band, uint8, tiled, DEFLATE; values 1..6 of a
mirrored synthetic coastal scene) and a prediction of it (the labels of another scene for one
block in four, so that the scores are not trivial) are written block by block. Then, each in a
fresh process: ``dltools eval-pixels`` on the pair, and the baseline, a short script that reads
both rasters whole through the same reader and counts their confusion with one ``np.bincount``.
Reported: wall time, megapixels per second, peak RSS (``wait4``), and whether the two confusion
matrices are equal.

    python bench/eval_pixels.py                  # 25, 100 and 400 MP (about 10 minutes, 2 cores)
    python bench/eval_pixels.py --sizes 25
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fcn import SCENE, measured, raster_profile

CLASSES = ["water", "wetsand", "drysand", "veg", "road", "other"]
BASELINE = """
import json, sys
import numpy as np
from dltools.io.geo import Window
from dltools.io.label_maps import LabelMap
pred, true = (LabelMap(path, sys.argv[3:]) for path in sys.argv[1:3])
height, width = true.shape
whole = Window(0, 0, width, height)
k = len(sys.argv[3:]) + 1
counts = np.bincount(true.read(whole).ravel() * k + pred.read(whole).ravel(), minlength=k * k)
print(json.dumps(counts.reshape(k, k)[1:, 1:].tolist()))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="25,100,400", help="megapixels (comma-separated)")
    parser.add_argument("--tmp", help="folder for the rasters (default: a temporary folder)")
    args = parser.parse_args(argv)
    lines = [
        "| rasters | eval-pixels wall | MP/s | peak RSS | whole-read baseline wall | peak RSS "
        "| one raster as int32 | confusions equal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(dir=args.tmp) as scratch:
        root = Path(scratch)
        labels = root / "labels.txt"
        labels.write_text("\n".join(CLASSES) + "\n")
        for mp in map(int, args.sizes.split(",")):
            folder = root / f"{mp}mp"
            folder.mkdir()
            side = _make_pair(folder / "ortho_label.tif", folder / "ortho_ares_96.tif", mp)
            cmd = [sys.executable, "-m", "dltools", "eval-pixels", "-i", str(folder)]
            cmd += ["--pred-glob", "*_ares_96.tif", "--true-glob", "*_label.tif", "-l", str(labels)]
            _, ours = measured(cmd)
            summary = json.loads((folder / "pixel_summary.json").read_text())
            confusion = summary["pooled"]["confusion"]
            files = [str(folder / "ortho_ares_96.tif"), str(folder / "ortho_label.tif")]
            stdout, base = measured([sys.executable, "-c", BASELINE, *files, *CLASSES])
            equal = json.loads(stdout) == confusion
            size = side * side
            lines.append(
                f"| {size / 1e6:.0f} MP | {ours['wall']:.1f} s | {size / 1e6 / ours['wall']:.1f} | "
                f"{ours['rss_gb']:.2f} GB | {base['wall']:.1f} s | {base['rss_gb']:.2f} GB | "
                f"{4 * size / 2**30:.2f} GB | {'yes' if equal else 'NO'} |"
            )
            print(lines[-1], flush=True)
    print("\n".join(lines))
    return 0


def _make_pair(true_path: Path, pred_path: Path, mp: int) -> int:
    """Manual label and prediction GeoTIFFs of about ``mp`` megapixels; returns their side."""
    import rasterio

    from dltools.io.geo import Window, create_raster, write_window
    from dltools.synthetic.scenes import coastal_scene

    side = round(math.sqrt(mp * 1e6))
    truth = coastal_scene(SCENE, SCENE, seed=1)[1]
    other = coastal_scene(SCENE, SCENE, seed=2)[1]
    profile = raster_profile(side, 1, None)
    with (
        rasterio.Env(GDAL_CACHEMAX=64),
        create_raster(true_path, profile) as true_dst,
        create_raster(pred_path, profile) as pred_dst,
    ):
        for n, row in enumerate(range(0, side, SCENE)):
            for m, col in enumerate(range(0, side, SCENE)):
                flip = (slice(None, None, 1 - 2 * (n % 2)), slice(None, None, 1 - 2 * (m % 2)))
                true = truth[flip][: side - row, : side - col]
                pred = (other if (n + m) % 4 == 1 else truth)[flip][: side - row, : side - col]
                window = Window(col, row, true.shape[1], true.shape[0])
                write_window(true_dst, np.ascontiguousarray(true)[..., None], window)
                write_window(pred_dst, np.ascontiguousarray(pred)[..., None], window)
    return side


if __name__ == "__main__":
    raise SystemExit(main())
