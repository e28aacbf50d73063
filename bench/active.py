"""Does "where to paint next" save strokes? A simulated labeller, guided or at random.

On St Margaret's frames (halved; ``../shared``), the labeller starts with strokes in two random
windows, then paints in rounds: each round adds strokes (simulated inside the hand labels, as
the CRF tests do) in one more window of those at least half hand-labelled, either the most
uncertain window not yet painted (``<name>_next.csv``:
``dltools.engines.uncertainty.rank_windows`` on the CRF posteriors of the strokes so far) or
a random unpainted window. After each round the frame is labelled
from all strokes (CRF at working scale 0.2) and scored against the hand labels. Both runs
share their first two windows. Printed per frame and pooled: accuracy against stroke pixels
spent, and the share of random's strokes that guided needs to reach random's final accuracy
(the issue asks for at most 60%).

    python bench/active.py                       # 5 frames, 8 rounds (about 5 minutes)
    python bench/active.py --frames 26607 --rounds 12 --window 256
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from dltools.engines.crf import label_from_strokes
from dltools.engines.uncertainty import rank_windows, uncertainty_map, upsample
from dltools.io.images import read_image
from dltools.raster.windows import edge_aligned_origins
from dltools.synthetic.scenes import simulate_strokes

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "stmarg" / "train"
FRAMES = ("26607", "26626", "26722", "26734", "26758")


def frame(number: str) -> tuple[np.ndarray, np.ndarray]:
    """A halved frame and its hand labels (0 unlabelled, 1-3 classes)."""
    rgb = read_image(SHARED / f"StMarg_{number}.jpg")
    labels = read_image(SHARED / f"SCLS_StMarg{number}.tif")[..., 0].astype(np.uint8)
    size = (rgb.shape[1] // 2, rgb.shape[0] // 2)
    return (
        cv2.resize(rgb, size, interpolation=cv2.INTER_AREA),
        cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST),
    )


def windows(labels: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Origins of the windows a simulated labeller can paint: at least half their pixels are
    hand-labelled (the shared labels leave 55-75% of each frame unlabelled, which a real
    labeller would label)."""
    return [
        (int(r), int(c))
        for r in edge_aligned_origins(labels.shape[0], size)
        for c in edge_aligned_origins(labels.shape[1], size)
        if np.mean(labels[r : r + size, c : c + size] > 0) >= 0.5
    ]


def paint(labels: np.ndarray, origin: tuple[int, int], size: int, seed: int) -> np.ndarray:
    """Strokes a labeller draws in one window: 2% of its labelled pixels, 3 px wide."""
    strokes = np.zeros(labels.shape, np.uint8)
    r, c = origin
    part = labels[r : r + size, c : c + size]
    strokes[r : r + size, c : c + size] = simulate_strokes(
        part, fraction=0.02, width=3, margin=5, seed=seed
    )
    return strokes


def run(rgb, labels, size: int, rounds: int, guided: bool, seed: int) -> list[tuple[int, float]]:
    """(stroke pixels, accuracy) after the start and after each round."""
    rng = np.random.default_rng(seed)
    grid = windows(labels, size)
    start = [grid[i] for i in np.random.default_rng(seed).choice(len(grid), 2, replace=False)]
    strokes = np.zeros(labels.shape, np.uint8)
    painted = set()
    for i, origin in enumerate(start):
        strokes = np.maximum(strokes, paint(labels, origin, size, seed + i))
        painted.add(origin)
    known = labels > 0
    curve = []
    for step in range(rounds + 1):
        class_map, posteriors = label_from_strokes(rgb, strokes, 3, scale=0.2, workers=2)
        accuracy = float(np.mean(class_map[known] + 1 == labels[known]))
        curve.append((int(np.count_nonzero(strokes)), accuracy))
        if step == rounds:
            break
        left = [w for w in grid if w not in painted]
        if not left:
            break
        if guided:
            values = upsample(uncertainty_map(posteriors), labels.shape)
            ranked = [(w.row, w.col) for w in rank_windows(values, posteriors, size)]
            origin = next(w for w in ranked if w in left)
        else:
            origin = left[int(rng.integers(len(left)))]
        painted.add(origin)
        strokes = np.maximum(strokes, paint(labels, origin, size, seed + 100 + step))
    return curve


def strokes_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((spent for spent, accuracy in curve if accuracy >= target), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", default=",".join(FRAMES), help="frame numbers")
    parser.add_argument("--rounds", type=int, default=8, help="rounds after the first two windows")
    parser.add_argument(
        "--window", type=int, default=256, help="window side, px of the halved frame"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"needs ../shared ({SHARED} not found)", file=sys.stderr)
        return 2
    ratios = []
    for number in args.frames.split(","):
        rgb, labels = frame(number)
        curves = {
            name: run(rgb, labels, args.window, args.rounds, name == "guided", args.seed)
            for name in ("random", "guided")
        }
        print(f"frame {number}: (stroke px, accuracy) per round")
        for name, curve in curves.items():
            print(f"  {name:<7}" + " ".join(f"{s:>6d}:{a:.4f}" for s, a in curve))
        target = curves["random"][-1][1]
        needed = strokes_to_reach(curves["guided"], target)
        spent = curves["random"][-1][0]
        ratio = None if needed is None else needed / spent
        ratios.append(ratio)
        shown = "never" if ratio is None else f"{needed} px = {100 * ratio:.0f}% of random's"
        print(f"  guided reaches random's final {target:.4f} with {shown} ({spent} px)")
    reached = [r for r in ratios if r is not None]
    if reached:
        print(f"median share of random's strokes needed by guided: {np.median(reached):.2f}")
    print(f"frames where guided reached random's final accuracy: {len(reached)}/{len(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
