"""Benchmark spectral models: memory of predict on a table-shaped cube, speed, and accuracy.

Three parts, chosen with ``--parts`` (default: memory throughput):

**memory**: peak RSS of ``dltools spectral predict`` on a 175 x 1 x 480 ``.npy`` cube (175
spectra stored as a one-column cube, as a user did), in a fresh child process, against a child
that only imports TensorFlow and loads the same model (each child's VmHWM).

**cv**: stratified 5-fold accuracy of the default ``train-classifier`` recipe on the synthetic
light-source spectra (``dltools.spectral.synthetic.light_sources``, seeds 0, 1, 2) against
1-NN on the pre-processed spectra and on their FFT magnitudes, in the same run
(``train-classifier --table --cv 5``); several minutes per seed on 2 CPU cores.

**throughput**: a synthetic 1000 x 1000 x 100 scene (dltools.spectral.synthetic) is written
as a tiled DEFLATE GeoTIFF (or kept as .npy with ``--format npy``). Models with the default
architectures are trained for one epoch on a 128 x 128 crop (speed does not depend on the
weights) and reloaded from their folders. Measured in the same run, over the whole cube:

- baseline: read every window, pre-process (minmax) and write a 10-band float32 GeoTIFF,
  without a model (the I/O floor of both verbs);
- encode with the MLP autoencoder (50-30-10) and the 1-D conv autoencoder (8-16 filters);
- predict with the 1-D CNN classifier (16-32 filters, flatten, 64 dense units; class map +
  scores).

    python bench/spectral.py                  # about 2-3 minutes on 2 CPU cores
    python bench/spectral.py --parts throughput --size 500 --format npy
    python bench/spectral.py --parts memory cv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOAD_ONLY = "from dltools.spectral.folder import load_model; load_model(sys.argv[1])"
# Runs ``-m MODULE ARGS`` or ``-c CODE ARGS`` and prints its peak RSS (VmHWM, KiB) on exit.
# VmHWM belongs to the process's own memory map, which exec creates anew; ru_maxrss would
# also count what the child shared with a large parent before exec (fork keeps its pages).
PROBE = """import atexit, re, runpy, sys
status = lambda: open("/proc/self/status").read()
atexit.register(lambda: print("VmHWM", re.search(r"VmHWM:\\s+(\\d+)", status())[1]))
how, what, sys.argv = sys.argv[1], sys.argv[2], sys.argv[2:]
runpy.run_module(what, run_name="__main__", alter_sys=True) if how == "-m" else exec(what)
"""


def peak_rss_gb(*command: str | os.PathLike) -> float:
    """Peak resident memory (GB) of ``python -m MODULE ...`` or ``python -c CODE ...``.

    Run in a child process of its own (stdout discarded, but for the measurement).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, command)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    found = re.findall(r"^VmHWM (\d+)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"{command} failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found[-1]) / 2**20


def _light_sources_table(path: Path, seed: int) -> None:
    """The synthetic light-source spectra of ``seed`` as a CSV table with a ``source`` column."""
    from dltools.spectral.synthetic import light_sources

    data = light_sources(seed=seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", *(f"band_{b}" for b in range(data.spectra.shape[1]))])
        for label, spectrum in zip(data.labels, data.spectra, strict=True):
            writer.writerow([f"source_{label}", *(f"{v:.6g}" for v in spectrum)])


def memory(tmp: Path) -> None:
    """Peak RSS of predict on a 175 x 1 x 480 cube, and of loading its model alone."""
    from dltools.cli.spectral import main as spectral
    from dltools.spectral.synthetic import light_sources

    data = light_sources(seed=0, per_class=(25, 25))
    np.save(tmp / "table_cube.npy", data.spectra[:, None, :])
    np.save(tmp / "table_labels.npy", data.labels[:, None])
    train = ["train-classifier", "-i", tmp / "table_cube.npy", "-r", tmp / "table_labels.npy"]
    assert spectral([str(a) for a in [*train, "-o", tmp / "m175", "--epochs", "2"]]) == 0
    load = peak_rss_gb("-c", LOAD_ONLY, tmp / "m175")
    predict = ["-m", "dltools", "spectral", "predict", "-m", tmp / "m175"]
    peak = peak_rss_gb(*predict, "-i", tmp / "table_cube.npy", "-o", tmp / "p175")
    print("\n| 175 x 1 x 480 cube | peak RSS |\n| --- | --- |")
    print(f"| import TensorFlow + load the model | {load:.2f} GB |")
    print(f"| dltools spectral predict | {peak:.2f} GB (+{1024 * (peak - load):.0f} MB) |")


def cross_validation(tmp: Path, seeds: list[int]) -> None:
    """5-fold accuracy of the default recipe vs both 1-NN baselines, per generator seed."""
    from dltools.cli.spectral import main as spectral

    rows = []
    for seed in seeds:
        _light_sources_table(tmp / f"sources_{seed}.csv", seed)
        command = ["train-classifier", "--table", tmp / f"sources_{seed}.csv"]
        command += ["--label-column", "source", "--cv", "5", "-o", tmp / f"cv_{seed}"]
        start = time.perf_counter()
        assert spectral([str(a) for a in command]) == 0
        scores = json.loads((tmp / f"cv_{seed}" / "cv.json").read_text())
        rows.append((seed, scores, time.perf_counter() - start))
    print("\n| seed | spectra | CNN | 1-NN spectra | 1-NN FFT | margin | time |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for seed, scores, seconds in rows:
        acc = {m: v["accuracy"] for m, v in scores["methods"].items()}
        print(
            f"| {seed} | {scores['spectra']} | {acc['cnn']:.3f} | {acc['1nn']:.3f} | "
            f"{acc['1nn_fft']:.3f} | {scores['margin']:+.3f} | {seconds / 60:.1f} min |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("memory", "cv", "throughput"),
        default=["memory", "throughput"],
        help="what to measure (default: memory throughput)",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="cv: seeds (default: 0 1 2)"
    )
    parser.add_argument("--size", type=int, default=1000, help="rows and columns of the cube")
    parser.add_argument("--bands", type=int, default=100)
    parser.add_argument("--format", choices=("tif", "npy"), default="tif")
    parser.add_argument("--block", type=int, default=512, help="window size of encode/predict")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dltools-bench-spectral-") as tmp:
        if "memory" in args.parts:
            memory(Path(tmp))
        if "cv" in args.parts:
            cross_validation(Path(tmp), args.seeds)
    if "throughput" in args.parts:
        throughput(args)
    return 0


def throughput(args: argparse.Namespace) -> None:
    """Pixels per second of encode and predict on a big synthetic cube, and the I/O floor."""
    from dltools.io.geo import write_raster
    from dltools.spectral.cube import RasterOutput, map_pixels, minmax_spectra, open_cube
    from dltools.spectral.folder import load_model
    from dltools.spectral.inference import encode_cube, predict_cube
    from dltools.spectral.labelled import labelled_pixels
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
        train_classifier(labelled_pixels(small, labels), tmp / "cnn", {}, one_epoch, verbose=0)

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


if __name__ == "__main__":
    raise SystemExit(main())
