"""Benchmark ``--dask``: images per second of ``segment`` in-process and on local clusters, and
the client's peak memory on a 400 MP GeoTIFF.

Speed: 24 demo-sized frames (768 x 512 synthetic coastal scenes) are segmented by ``dltools
segment`` (a 32-px colour-moment tile model, ``--refine mlp``) in a fresh process each time:
in-process (no ``--dask``), ``--dask local:1`` and ``--dask local:2``. Reported: the command's
wall time (start-up included: Python, TensorFlow, the cluster, the model on each worker) and
images per second over it, and the steady rate between the first and the last finished image
(start-up excluded), each with its ratio to in-process, measured in the same run, and the CPU
seconds the command used with all its processes (cluster and workers included): CPU-s / wall is
how many cores a mode keeps busy, which bounds what more workers can gain.

Memory: a square GeoTIFF of ``--mp`` megapixels (mirrored synthetic scene, tiled, DEFLATE;
bench/fcn.py makes it) is segmented under ``--dask local:2`` with ``--refine none``, in
``--block`` windows; the client's peak RSS is its VmHWM (its own, not its workers'), read
every 0.2 s while it runs.

    python bench/scale.py                          # speed and memory (about 15 minutes on 2 cores)
    python bench/scale.py --parts speed --frames 12
    python bench/scale.py --parts memory --mp 100
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"
sys.path.insert(0, str(REPO / "tests"))  # the tile model of tests/test_segment.py


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts", default="speed,memory,client", help="speed, memory, client (comma-separated)"
    )
    parser.add_argument("--frames", type=int, default=24, help="frames for the speed part")
    parser.add_argument("--modes", default="in-process,local:1,local:2")
    parser.add_argument("--mp", type=int, default=400, help="megapixels of the memory raster")
    parser.add_argument("--block", type=int, default=4096, help="--block of the memory run")
    parser.add_argument("--client-mp", type=int, default=64, help="megapixels, client part")
    parser.add_argument("--keep", help="work in this folder (kept) instead of a temporary one")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.keep or scratch)
        root.mkdir(parents=True, exist_ok=True)
        print(f"load average at start: {_load()}")
        model = _model(root) if {"speed", "memory"} & set(parts) else None
        if "speed" in parts:
            frames = _frames(root / "frames", args.frames)
            rows = [_speed(mode, frames, model, root) for mode in args.modes.split(",")]
            print(_speed_table(rows, args.frames))
        if "client" in parts:
            print(_client_rate(root, args.client_mp))
        if "memory" in parts:
            print(_memory(root, model, args.mp, args.block))
        print(f"load average at end: {_load()}")
    return 0


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _model(root: Path) -> Path:
    from test_segment import tile_model

    from dltools.io.labels import write_labels
    from dltools.synthetic.scenes import CLASS_NAMES, coastal_scene

    write_labels(root / "labels.txt", CLASS_NAMES)
    if not (root / "model").exists():
        tile_model(root / "model", [coastal_scene(384, 512, seed=2)], 32)
    return root / "model"


def _frames(folder: Path, n: int) -> Path:
    from dltools.io.images import write_image
    from dltools.synthetic.scenes import coastal_scene

    folder.mkdir(exist_ok=True)
    for i in range(n):
        if not (folder / f"frame_{i:02d}.jpg").exists():
            write_image(folder / f"frame_{i:02d}.jpg", coastal_scene(512, 768, seed=100 + i)[0])
    return folder


def _segment(source: Path, model: Path, root: Path, out: Path, *extra: object) -> list[str]:
    args = ["segment", source, "-m", model, "-l", root / "labels.txt", "-c"]
    args += [DEMO / "labeldefs.txt", "-t", 32, "--out-dir", out, "--force", *extra]
    return [sys.executable, "-m", "dltools", *map(str, args)]


def _speed(mode: str, frames: Path, model: Path, root: Path) -> dict:
    """One run of segment over the frames: wall time and the times images finished."""
    extra = ["--refine", "mlp"] + ([] if mode == "in-process" else ["--dask", mode])
    cmd = _segment(frames, model, root, root / f"out_{mode.replace(':', '_')}", *extra)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    cpu_before = _children_cpu()
    finished = []
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True) as proc:  # fmt: skip
        for line in proc.stdout:
            if line.strip().startswith("wrote") and line.strip().endswith(".png"):
                finished.append(time.perf_counter() - start)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{mode}: segment failed ({proc.returncode})")
    row = {"mode": mode, "wall": wall, "first": finished[0], "last": finished[-1], "load": _load()}
    row["cpu"] = _children_cpu() - cpu_before  # the command, its cluster and workers
    print(row, flush=True)
    return row


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process and their descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _speed_table(rows: list[dict], n: int) -> str:
    base = rows[0]
    base_rate = n / base["wall"]
    base_steady = (n - 1) / (base["last"] - base["first"])
    lines = [
        f"| {n} frames of 768 x 512 | wall | images/s | vs in-process | steady images/s "
        "(first to last image) | vs in-process | CPU-s | cores busy (CPU-s / wall) | "
        "load average (1, 5, 15 min) after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        rate, steady = n / r["wall"], (n - 1) / (r["last"] - r["first"])
        lines.append(
            f"| {r['mode']} | {r['wall']:.1f} s | {rate:.2f} | {rate / base_rate:.2f}x | "
            f"{steady:.2f} | {steady / base_steady:.2f}x | {r['cpu']:.0f} | "
            f"{r['cpu'] / r['wall']:.2f} | {r['load']} |"
        )
    return "\n".join(lines)


def _memory(root: Path, model: Path, mp: int, block: int) -> str:
    from fcn import _make_raster

    raster = root / f"ortho_{mp}mp.tif"
    if not raster.exists():
        side = _make_raster(raster, mp)
        print(f"made {raster}: {side} x {side}", flush=True)
    cmd = _segment(raster, model, root, root / "out_big", "--refine", "none", "--block", block)
    cmd += ["--dask", "local:2"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    peak = 0
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True) as proc:  # fmt: skip
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                text = status.read_text()
            except OSError:
                break
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
            time.sleep(0.2)
        stdout = proc.stdout.read()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"memory run failed ({proc.returncode}): {stdout[-2000:]}")
    found = re.search(r"(\d+) window\(s\), ([\d.]+) s", stdout)
    windows = f"{found.group(1)} windows, {found.group(2)} s for the image" if found else "?"
    return (
        f"| {mp} MP GeoTIFF, --dask local:2, --block {block} | {windows} | wall {wall:.0f} s | "
        f"{mp / wall:.2f} MP/s | client peak RSS {peak / 2**20:.2f} GB | load {_load()} |"
    )


def _client_rate(root: Path, mp: int) -> str:
    """What the client alone can assemble: megapixels per second written into the label and
    probability COGs (staging GeoTIFF window by window, then the COG copy), as segment's client
    does with the windows coming back, from windows already in memory (no work, no network)."""
    import numpy as np
    from rasterio.transform import from_origin

    from dltools.io.cog import open_cog_writer
    from dltools.io.geo import Window, write_window
    from dltools.io.labels import Classes, default_colors
    from dltools.synthetic.scenes import coastal_scene

    block = 2048
    side = max(1, round((mp * 1e6) ** 0.5 / block)) * block
    _, labels = coastal_scene(block, block, seed=3)
    values = labels.astype(np.uint8)
    prob = (0.5 + 0.5 * np.cos(labels * 0.7 + np.arange(block)[None, :] / 300)).astype(np.float32)
    like = {"width": side, "height": side, "crs": "EPSG:32610",
            "transform": from_origin(600000, 4100000, 0.05, 0.05)}  # fmt: skip
    classes = Classes([f"c{k}" for k in range(1, 7)], default_colors(6))
    rates = []
    for name, array, kind in (("labels", values, classes), ("probability", prob, None)):
        wall, cpu = time.perf_counter(), time.process_time()
        nodata = 0 if kind else float("nan")
        with open_cog_writer(root / f"client_{name}.tif", like, array.dtype, nodata, kind) as dst:
            for row in range(0, side, block):
                for col in range(0, side, block):
                    write_window(dst, array, Window(col, row, block, block))
            staged = (time.perf_counter() - wall, time.process_time() - cpu)
        done = (time.perf_counter() - wall, time.process_time() - cpu)
        total = side * side / 1e6
        rates.append(
            f"{name}: staging {total / staged[0]:.1f} MP/s ({total / staged[1]:.1f} MP per "
            f"CPU-s), COG copy {total / (done[0] - staged[0]):.1f} MP/s "
            f"({total / (done[1] - staged[1]):.1f} MP per CPU-s)"
        )
    return f"client alone, {side} x {side} px: " + "; ".join(rates)


if __name__ == "__main__":
    raise SystemExit(main())
