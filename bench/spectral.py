"""Benchmark spectral models: pixels per second for encode and predict on a hyperspectral cube.

A synthetic 1000 x 1000 x 100 scene (dltools.spectral.synthetic) is written as a tiled DEFLATE
GeoTIFF (or kept as .npy with ``--format npy``). Models with the default architectures are
trained for one epoch on a 128 x 128 crop (speed does not depend on the weights) and reloaded
from their folders. Measured in the same run, over the whole cube:

- baseline: read every window, pre-process (minmax) and write a 10-band float32 GeoTIFF,
  without a model (the I/O floor of both verbs);
- encode with the MLP autoencoder (50-30-10) and the 1-D conv autoencoder (8-16 filters);
- predict with the 1-D CNN classifier (16-32 filters, 64 dense units; class map + scores).

    python bench/spectral.py                  # about 2-3 minutes on 2 CPU cores
    python bench/spectral.py --size 500 --format npy
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="rows and columns of the cube")
    parser.add_argument("--bands", type=int, default=100)
    parser.add_argument("--format", choices=("tif", "npy"), default="tif")
    parser.add_argument("--block", type=int, default=512, help="window size of encode/predict")
    args = parser.parse_args(argv)

    from dltools.io.geo import write_raster
    from dltools.spectral.cube import RasterOutput, map_pixels, minmax_spectra, open_cube
    from dltools.spectral.folder import load_model
    from dltools.spectral.inference import encode_cube, predict_cube
    from dltools.spectral.synthetic import spectral_scene
    from dltools.spectral.training import Training, train_autoencoder, train_classifier

    with tempfile.TemporaryDirectory(prefix="dltools-bench-spectral-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        scene = spectral_scene(args.size, args.size, args.bands, seed=0, patch_size=40)
        grid = {"width": args.size, "height": args.size, "crs": None}
        path = tmp / f"cube.{args.format}"
        if args.format == "npy":
            np.save(path, scene.cube)
        else:
            write_raster(path, scene.cube, grid)
        crop = tmp / "crop.npy"
        np.save(crop, scene.cube[:128, :128])
        np.save(tmp / "crop_labels.npy", scene.labels[:128, :128])
        print(
            f"{args.size} x {args.size} x {args.bands} cube ({path.stat().st_size / 2**20:.0f} MiB "
            f"{args.format}) made in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        del scene

        from dltools.spectral.cube import open_labels

        small = open_cube(crop)
        one_epoch = Training(epochs=1, batch_size=256)
        train_autoencoder(small, tmp / "mlp", "mlp", {}, one_epoch, verbose=0)
        train_autoencoder(small, tmp / "conv", "conv", {}, one_epoch, verbose=0)
        labels = open_labels(tmp / "crop_labels.npy", small)
        train_classifier(small, labels, tmp / "cnn", {}, one_epoch, verbose=0)

        cube = open_cube(path)
        pixels = args.size * args.size
        rows = []

        def timed(name, run):
            start = time.perf_counter()
            run()
            seconds = time.perf_counter() - start
            rows.append((name, seconds, pixels / seconds))
            print(f"{name:<28} {seconds:7.1f} s {pixels / seconds:12,.0f} px/s", flush=True)

        baseline_out = {"x": RasterOutput(tmp / "io.tif", 10, "float32", np.nan)}
        timed(
            "baseline (read+scale+write)",
            lambda: map_pixels(
                cube, lambda s: {"x": minmax_spectra(s)[:, :10]}, baseline_out, args.block
            ),
        )
        for kind in ("mlp", "conv"):
            model = load_model(tmp / kind)
            timed(
                f"encode ({kind} autoencoder)",
                lambda m=model, k=kind: encode_cube(m, cube, tmp / f"{k}.tif", args.block),
            )
        classifier = load_model(tmp / "cnn")
        timed(
            "predict (1-D CNN)",
            lambda: predict_cube(
                classifier, cube, tmp / "classes.tif", tmp / "scores.tif", block=args.block
            ),
        )
    base = rows[0][1]
    print("\n| step | seconds | pixels/s | time / baseline |\n| --- | --- | --- | --- |")
    for name, seconds, rate in rows:
        print(f"| {name} | {seconds:.1f} | {rate:,.0f} | {seconds / base:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
