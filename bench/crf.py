"""Benchmark the dense-CRF engine against one plain pydensecrf call at the same settings.

For synthetic coastal scenes of 1, 6 and 36 MP with simulated strokes (2% of the pixels),
labelled at working scale 1.0 with the dl_tools defaults, prints per variant: seconds per
megapixel, peak memory, the engine/plain time ratio and the pixel agreement of their labels.

Each variant runs in a fresh subprocess. Peak memory is the largest sum of PSS (proportional
set size: shared pages counted once) over the subprocess and its workers, sampled every 50 ms;
the largest RSS of any single process (getrusage) is shown too. The plain call is skipped where
it would not fit in memory (about 0.45 GB per megapixel; see ``--plain-max-mp``).

    python bench/crf.py                   # 1, 6 and 36 MP (about 10 minutes on 2 cores)
    python bench/crf.py --sizes 1,6       # quicker
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

SIZES = {1: (816, 1224), 6: (2000, 3000), 36: (4912, 7360)}  # MP -> (height, width)
N_CLASSES = 6  # coastal_scene labels 1..6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,6,36", help="megapixels, from 1, 6, 36")
    parser.add_argument("--workers", type=int, default=None, help="engine workers (all cores)")
    parser.add_argument("--plain-max-mp", type=float, default=12, help="largest plain call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=["engine", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)

    rows = []
    with tempfile.TemporaryDirectory(prefix="dltools-bench-crf-") as tmp:
        for mp in (int(s) for s in args.sizes.split(",")):
            data = Path(tmp) / f"scene{mp}.npz"
            t0 = time.perf_counter()
            _make_scene(mp, args.seed, data)
            print(f"{mp} MP scene and strokes made in {time.perf_counter() - t0:.0f} s", flush=True)
            runs = {"engine": _measure("engine", data, Path(tmp) / "engine.npy", args.workers)}
            if mp <= args.plain_max_mp:
                runs["plain"] = _measure("plain", data, Path(tmp) / "plain.npy", None)
            with np.load(data) as scene:
                rows.append(_row(mp, runs, scene["labels"]))
            data.unlink()
            print(_table(rows[-1:]), flush=True)
    workers = args.workers or os.cpu_count()
    print(f"\nsummary (engine with {workers} workers, {os.cpu_count()} cores; working scale 1.0):")
    print(_table(rows))
    return 0


def _make_scene(mp: int, seed: int, path: Path) -> None:
    from dltools.synthetic import coastal_scene, simulate_strokes

    height, width = SIZES[mp]
    rgb, labels = coastal_scene(height, width, seed=seed)
    sparse = simulate_strokes(labels, fraction=0.02, width=3, margin=10, seed=seed)
    np.savez(path, rgb=rgb, sparse=sparse, labels=labels)


def _measure(variant: str, data: Path, out: Path, workers: int | None) -> dict:
    """Run one variant in a subprocess; its JSON report plus the sampled peak memory."""
    cmd = [sys.executable, __file__, "--child", variant, "--data", str(data), "--out", str(out)]
    if workers:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_pss(proc.pid))
        time.sleep(0.05)
    stdout = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"{variant} failed with status {proc.returncode}")
    report = json.loads(stdout.strip().splitlines()[-1])
    report["peak_gb"] = peak / 2**30
    for key, path in (("labels", out), ("decided", out.with_name(out.stem + "_decided.npy"))):
        if path.exists():
            report[key] = np.load(path)
            path.unlink()
    return report


def _tree_pss(root: int) -> int:
    """Sum of PSS in bytes over ``root`` and all its descendants (0 for vanished processes)."""
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def _child(args: argparse.Namespace) -> int:
    """Load the scene, label it with one variant, save the working-scale labels, print JSON."""
    with np.load(args.data) as data:
        rgb, sparse = data["rgb"], data["sparse"]
    start = time.perf_counter()
    if args.child == "engine":
        from dltools.crf import CRFParams, label_from_strokes

        _, posteriors = label_from_strokes(
            rgb, sparse, N_CLASSES, scale=1.0, params=CRFParams(), workers=args.workers,
            progress=False,
        )  # fmt: skip
        labels = _argmax(posteriors)
    else:
        labels, decided = _plain(rgb, sparse)
        np.save(args.out.replace(".npy", "_decided.npy"), decided)
    seconds = time.perf_counter() - start
    np.save(args.out, labels)
    maxrss = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    print(json.dumps({"seconds": seconds, "mp": rgb.shape[0] * rgb.shape[1] / 1e6,
                      "maxrss_gb": maxrss / 2**20}))  # fmt: skip
    return 0


def _plain(rgb: np.ndarray, sparse: np.ndarray) -> np.ndarray:
    """One whole-image CRF as dl_tools ran it: theta 60, scale 1, compat 100, 30 iterations.

    Returns (labels, decided): (H, W) uint8 0-based and (H, W) bool, False where the posterior
    is still uniform (no stroke reached the pixel, so argmax picks class 0 by default).
    """
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import create_pairwise_bilateral, unary_from_labels

    height, width = sparse.shape
    crf = dcrf.DenseCRF2D(width, height, N_CLASSES)
    crf.setUnaryEnergy(unary_from_labels(sparse.astype(np.int64), N_CLASSES, gt_prob=0.5))
    feats = create_pairwise_bilateral(sdims=(60, 60), schan=(1, 1, 1), img=rgb, chdim=2)
    crf.addPairwiseEnergy(
        feats, compat=100, kernel=dcrf.DIAG_KERNEL, normalization=dcrf.NORMALIZE_SYMMETRIC
    )
    del feats
    q = np.asarray(crf.inference(30), dtype=np.float32)
    decided = q.max(axis=0) > 1 / N_CLASSES + 1e-3  # False: still uniform, argmax says 0
    labels = np.argmax(q, axis=0).astype(np.uint8)
    return labels.reshape(height, width), decided.reshape(height, width)


def _argmax(posteriors: np.ndarray) -> np.ndarray:
    labels = np.empty(posteriors.shape[:2], np.uint8)
    for top in range(0, labels.shape[0], 512):
        labels[top : top + 512] = np.argmax(posteriors[top : top + 512], axis=2)
    return labels


def _row(mp: int, runs: dict, truth: np.ndarray) -> dict:
    """Timings, memory, agreement (all pixels; where plain decides) and accuracy vs truth."""
    engine, plain = runs["engine"], runs.get("plain")
    for run in runs.values():
        run["accuracy"] = float(np.mean(run["labels"] + 1 == truth))
    row = {"mp": mp, "engine": engine, "plain": plain}
    if plain is not None:
        same = engine["labels"] == plain["labels"]
        row["ratio"] = engine["seconds"] / plain["seconds"]
        row["agreement"] = float(np.mean(same))
        row["agreement_decided"] = float(np.mean(same[plain["decided"]]))
        row["undecided"] = float(np.mean(~plain["decided"]))
    return row


def _table(rows: list[dict]) -> str:
    head = (
        f"{'MP':>4} {'variant':<7} {'s/MP':>6} {'seconds':>8} {'peak GB':>8} {'max RSS GB':>10}"
        f" {'accuracy':>8}  {'time ratio':>10} {'agree all':>9} {'agree decided':>13}"
    )
    lines = [head]
    for row in rows:
        for name in ("engine", "plain"):
            run = row[name]
            if run is None:
                lines.append(f"{row['mp']:>4} {name:<7}   (skipped: would not fit in memory)")
                continue
            extra = ""
            if name == "engine" and "ratio" in row:
                extra = (
                    f"  {row['ratio']:>10.2f} {row['agreement']:>9.4f}"
                    f" {row['agreement_decided']:>13.4f}"
                )
            elif name == "plain":
                extra = f"  (uniform posterior at {row['undecided']:.2%} of the pixels)"
            lines.append(
                f"{row['mp']:>4} {name:<7} {run['seconds'] / run['mp']:>6.2f} "
                f"{run['seconds']:>8.1f} {run['peak_gb']:>8.2f} {run['maxrss_gb']:>10.2f}"
                f" {run['accuracy']:>8.4f}{extra}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
