"""Benchmark the dense-CRF engine against one plain pydensecrf call at the same settings.

Scenes of 1, 6 and 36 MP with strokes simulated inside their labels (2% of the labelled pixels,
3 px wide), labelled at working scale 1.0 with the dl_tools defaults (theta 60, scale 1, compat
100, gt-prob 0.5, 30 iterations). The scene is a real UAV frame by default: St Margaret's
``--frame`` (26607; 5.9 MP as shot, resized to 1 and 36 MP) with its hand-made labels, read from
``../shared``; ``--scene synthetic`` (or no ``../shared``) uses a synthetic coastal scene instead.

Variants, each in a fresh subprocess:

* ``engine``: ``dltools.engines.crf.label_from_strokes`` on all cores (``--workers``);
* ``plain``: one whole-image pydensecrf call, as dl_tools made it;
* ``plain-T``: the same call on the transposed image. Its energy is the same; only the
  permutohedral lattice's approximation differs, so its agreement with ``plain`` is how far the
  reference itself is reproducible: the ceiling for any other implementation.

Printed per variant: seconds per megapixel, peak memory, accuracy on the labelled pixels, the
time ratio to ``plain`` and the agreement of the working-scale labels with ``plain`` over all
pixels, over the pixels where ``plain`` decides (elsewhere its posterior is uniform: no stroke
reached the pixel and argmax says class 0 by tie-break) and over the labelled pixels it decides.
Where engine and plain disagree on labelled pixels, the share each gets right is printed too.

Peak memory is the largest sum of PSS (proportional set size: shared pages counted once) over
the subprocess and its workers, sampled every 250 ms or more (the sampler takes at most 10% of
one core: reading PSS costs 0.15 s for a 12 GB process); the largest RSS of any single process
(getrusage) is shown too. Plain calls are skipped where they would not fit in 80% of the
available memory (about 0.45 GB per megapixel; ``--plain-max-mp``).

    python bench/crf.py                    # 1, 6 and 36 MP (about 35 minutes on 2 cores)
    python bench/crf.py --sizes 6 --frame 27113
    python bench/crf.py --scene synthetic --sizes 1,6
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {1: (816, 1224), 6: (2000, 3000), 36: (4912, 7360)}  # MP -> synthetic (height, width)
STMARG = Path(__file__).resolve().parents[2] / "shared" / "data" / "stmarg" / "train"
VARIANTS = ("engine", "plain", "plain-T")
PLAIN_GB_PER_MP = 0.45  # peak memory of one plain call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,6,36", help="megapixels, from 1, 6, 36")
    parser.add_argument(
        "--scene", choices=["stmarg", "synthetic"], default=None,
        help="stmarg: a real frame from ../shared (default when present); synthetic otherwise",
    )  # fmt: skip
    parser.add_argument("--frame", default="26607", help="St Margaret's frame number")
    parser.add_argument("--workers", type=int, default=None, help="engine workers (all cores)")
    parser.add_argument(
        "--plain-max-mp", type=float, default=None,
        help="largest plain call in MP (default: what 80%% of the available memory holds)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the strokes and scenes")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    scene = args.scene or ("stmarg" if STMARG.is_dir() else "synthetic")
    if scene == "stmarg" and not STMARG.is_dir():
        parser.error(f"the St Margaret's frames are not at {STMARG}: use --scene synthetic")
    plain_max_mp = args.plain_max_mp or 0.8 * _available_gb() / PLAIN_GB_PER_MP
    name = f"St Margaret's frame {args.frame}" if scene == "stmarg" else "synthetic coastal scene"
    print(f"scene: {name}", flush=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="dltools-bench-crf-") as tmp:
        for mp in (int(s) for s in args.sizes.split(",")):
            data = Path(tmp) / f"scene{mp}.npz"
            t0 = time.perf_counter()
            _make_scene(scene, args.frame, mp, args.seed, data)
            print(f"{mp} MP scene and strokes made in {time.perf_counter() - t0:.0f} s", flush=True)
            variants = VARIANTS if mp <= plain_max_mp else VARIANTS[:1]
            runs = {v: _measure(v, data, Path(tmp) / f"{v}.npz", args.workers) for v in variants}
            with np.load(data) as arrays:
                rows.append(_row(mp, runs, arrays["labels"]))
            data.unlink()
            print(_table(rows[-1:]), flush=True)
    workers = args.workers or os.cpu_count()
    print(f"\nsummary: {name}; engine with {workers} workers on {os.cpu_count()} cores")
    print(_table(rows))
    return 0


def _available_gb() -> float:
    """MemAvailable from /proc/meminfo, in GB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def _make_scene(scene: str, frame: str, mp: int, seed: int, path: Path) -> None:
    """Save rgb (H, W, 3) uint8, labels (H, W) uint8 (0 = unlabelled) and strokes to ``path``."""
    import cv2

    from dltools.synthetic.scenes import coastal_scene, simulate_strokes

    if scene == "synthetic":
        rgb, labels = coastal_scene(*SIZES[mp], seed=seed)
    else:
        from dltools.io.images import read_image

        rgb = read_image(STMARG / f"StMarg_{frame}.jpg")
        labels = read_image(STMARG / f"SCLS_StMarg{frame}.tif")[..., 0].astype(np.uint8)
        factor = np.sqrt(mp * 1e6 / labels.size)
        if abs(factor - 1) > 0.05:  # 1 or 36 MP: resize the frame, keep its aspect ratio
            size = (round(labels.shape[1] * factor), round(labels.shape[0] * factor))
            area = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            rgb = cv2.resize(rgb, size, interpolation=area)
            labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    sparse = simulate_strokes(labels, fraction=0.02, width=3, margin=10, seed=seed)
    np.savez(path, rgb=rgb, sparse=sparse, labels=labels, n_classes=int(labels.max()))


def _measure(variant: str, data: Path, out: Path, workers: int | None) -> dict:
    """Run one variant in a subprocess; its JSON report plus the sampled peak memory."""
    cmd = [sys.executable, __file__, "--child", variant, "--data", str(data), "--out", str(out)]
    if workers:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        start = time.perf_counter()
        peak = max(peak, _tree_pss(proc.pid))
        time.sleep(max(0.25, 10 * (time.perf_counter() - start)))  # at most 10% of one core
    stdout = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"{variant} failed with status {proc.returncode}")
    report = json.loads(stdout.strip().splitlines()[-1])
    report["peak_gb"] = peak / 2**30
    with np.load(out) as result:
        report["labels"], report["decided"] = result["labels"], result["decided"]
    out.unlink()
    return report


def _tree_pss(root: int) -> int:
    """Sum of PSS in bytes over ``root`` and all its descendants (0 for vanished processes).

    Descendants are found through ``/proc/PID/task/TID/children``, so a sample costs a few
    file reads, not a scan of every process.
    """
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def _child(args: argparse.Namespace) -> int:
    """Label the scene with one variant; save its working-scale labels and decided mask, print
    a JSON report."""
    with np.load(args.data) as data:
        rgb, sparse, n_classes = data["rgb"], data["sparse"], int(data["n_classes"])
    start = time.perf_counter()
    if args.child == "engine":
        from dltools.engines.crf import CRFParams, label_from_strokes

        _, posteriors = label_from_strokes(
            rgb, sparse, n_classes, scale=1.0, params=CRFParams(), workers=args.workers,
            progress=False,
        )  # fmt: skip
        labels, decided = _decide(posteriors)
    elif args.child == "plain":
        labels, decided = _decide(_plain(rgb, sparse, n_classes))
    else:
        rgb_t, sparse_t = (np.ascontiguousarray(a.swapaxes(0, 1)) for a in (rgb, sparse))
        labels, decided = (a.T for a in _decide(_plain(rgb_t, sparse_t, n_classes)))
    seconds = time.perf_counter() - start
    with open(args.out, "wb") as file:
        np.savez(file, labels=labels, decided=decided)
    maxrss = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    print(json.dumps({"seconds": seconds, "mp": rgb.shape[0] * rgb.shape[1] / 1e6,
                      "maxrss_gb": maxrss / 2**20}))  # fmt: skip
    return 0


def _plain(rgb: np.ndarray, sparse: np.ndarray, n_classes: int) -> np.ndarray:
    """One whole-image CRF as dl_tools ran it; (H, W, K) float32 posteriors.

    dl_tools gave pydensecrf ``K + 1`` labels (stroke values 1..K, 0 unsure), so the CRF has a
    last label that no stroke names; its posterior is dropped here.
    """
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import create_pairwise_bilateral, unary_from_labels

    height, width = sparse.shape
    n_labels = n_classes + 1
    crf = dcrf.DenseCRF2D(width, height, n_labels)
    crf.setUnaryEnergy(unary_from_labels(sparse.astype(np.int64), n_labels, gt_prob=0.5))
    feats = create_pairwise_bilateral(sdims=(60, 60), schan=(1, 1, 1), img=rgb, chdim=2)
    crf.addPairwiseEnergy(
        feats, compat=100, kernel=dcrf.DIAG_KERNEL, normalization=dcrf.NORMALIZE_SYMMETRIC
    )
    del feats
    q = np.asarray(crf.inference(30), dtype=np.float32)[:n_classes]
    return q.T.reshape(height, width, n_classes)


def _decide(posteriors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels (H, W) uint8 0-based argmax, decided (H, W) bool: the posterior is not uniform)."""
    shape = posteriors.shape[:2]
    labels, decided = np.empty(shape, np.uint8), np.empty(shape, bool)
    for top in range(0, shape[0], 512):
        band = posteriors[top : top + 512]
        labels[top : top + 512] = np.argmax(band, axis=2)
        decided[top : top + 512] = band.max(axis=2) - band.min(axis=2) > 1e-3
    return labels, decided


def _row(mp: int, runs: dict, truth: np.ndarray) -> dict:
    """Timings, memory, accuracy on labelled pixels and agreement with the plain call."""
    labelled = truth > 0
    for run in runs.values():
        run["accuracy"] = float(np.mean(run["labels"][labelled] + 1 == truth[labelled]))
    row = {"mp": mp, "runs": runs}
    plain = runs.get("plain")
    if plain is None:
        return row
    decided = plain["decided"]
    row["undecided"] = float(np.mean(~decided))
    for name, run in runs.items():
        same = run["labels"] == plain["labels"]
        run["ratio"] = run["seconds"] / plain["seconds"]
        run["agree"] = [
            float(np.mean(same)),
            float(np.mean(same[decided])),
            float(np.mean(same[decided & labelled])),
        ]
        differ = ~same & labelled
        if name != "plain" and differ.any():
            run["right"] = [
                float(np.mean(run["labels"][differ] + 1 == truth[differ])),
                float(np.mean(plain["labels"][differ] + 1 == truth[differ])),
                float(np.mean(differ[labelled])),
            ]
    return row


def _table(rows: list[dict]) -> str:
    head = (
        f"{'MP':>4} {'variant':<8} {'s/MP':>6} {'seconds':>8} {'peak GB':>7} {'maxRSS GB':>9}"
        f" {'accuracy':>8} {'time/plain':>10}  {'agreement with plain: all / decided / labelled'}"
    )
    lines = [head]
    for row in rows:
        for name, run in row["runs"].items():
            line = (
                f"{row['mp']:>4} {name:<8} {run['seconds'] / run['mp']:>6.2f} "
                f"{run['seconds']:>8.1f} {run['peak_gb']:>7.2f} {run['maxrss_gb']:>9.2f}"
                f" {run['accuracy']:>8.4f}"
            )
            if "agree" in run:
                line += f" {run['ratio']:>10.2f}  " + " / ".join(f"{a:.4f}" for a in run["agree"])
            lines.append(line)
            if "right" in run:
                lines.append(
                    f"{'':>14}where {name} and plain differ on labelled pixels "
                    f"({run['right'][2]:.2%} of them): {name} right {run['right'][0]:.1%}, "
                    f"plain right {run['right'][1]:.1%}"
                )
        if "runs" in row and "plain" not in row["runs"]:
            lines.append(f"{row['mp']:>4} plain    (skipped: would not fit in memory)")
        elif "undecided" in row:
            lines.append(f"{'':>14}plain leaves {row['undecided']:.2%} of the pixels uniform")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
