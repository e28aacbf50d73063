"""Does "where to paint next" save strokes? A simulated labeller, guided or at random.

On St Margaret's frames (halved; ``../shared``), the labeller starts with strokes in two random
windows, then paints in rounds: each round adds strokes (simulated inside the hand labels, as
the CRF tests do) in one more window of those at least half hand-labelled, either the most
uncertain window not yet painted (``<name>_next.csv``:
``dltools.engines.uncertainty.rank_windows`` on the CRF posteriors of the strokes so far) or
a random unpainted window. A round's strokes cover as many pixels as 2% of the window's
labelled pixels; the guided labeller draws them where the uncertainty overlay (key ``u`` of
the painter) shows doubt (uncertainty >= ``DOUBT``), or anywhere in the window with
``--window-only``; the random labeller anywhere in its window. After each round the frame is
labelled from all strokes (CRF at working scale 0.2) and scored against the hand labels. Both
runs share their first two windows; ``--seeds`` runs per frame start from other windows.
Printed per run and pooled over runs (mean stroke pixels and mean accuracy per round): the
share of random's strokes that guided needs to reach random's final accuracy (the issue asks
for at most 60%).

    python bench/active.py                       # 5 frames x 3 seeds, 16 rounds (about 5 minutes)
    python bench/active.py --window-only
    python bench/active.py --frames 26607 --rounds 8 --window 256 --seeds 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from dltools.engines.crf import label_from_strokes
from dltools.engines.uncertainty import DOUBT, rank_windows, uncertainty_map, upsample
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


def paint(
    labels: np.ndarray,
    origin: tuple[int, int],
    size: int,
    seed: int,
    doubt: np.ndarray | None = None,
) -> np.ndarray:
    """Strokes a labeller draws in one window: as many pixels as 2% of its labelled pixels,
    3 px wide; anywhere in the window, or, given the (H, W) bool ``doubt`` overlay, only in
    its doubtful part (as a labeller shown the uncertainty overlay would)."""
    strokes = np.zeros(labels.shape, np.uint8)
    r, c = origin
    part = labels[r : r + size, c : c + size]
    fraction = 0.02
    if doubt is not None:
        where = doubt[r : r + size, c : c + size] & (part > 0)
        if np.count_nonzero(where) >= 0.1 * np.count_nonzero(part):
            fraction *= np.count_nonzero(part) / np.count_nonzero(where)
            part = np.where(where, part, 0)
    strokes[r : r + size, c : c + size] = simulate_strokes(
        part, fraction=min(fraction, 1.0), width=3, margin=5, seed=seed
    )
    return strokes


def run(
    rgb, labels, size: int, rounds: int, guided: bool, seed: int, overlay: bool
) -> list[tuple[int, float]]:
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
        doubt = None
        if guided:
            values = upsample(uncertainty_map(posteriors), labels.shape)
            ranked = [(w.row, w.col) for w in rank_windows(values, posteriors, size)]
            origin = next(w for w in ranked if w in left)
            if overlay:
                doubt = values >= DOUBT
        else:
            origin = left[int(rng.integers(len(left)))]
        painted.add(origin)
        strokes = np.maximum(strokes, paint(labels, origin, size, seed + 100 + step, doubt))
    return curve


def strokes_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((spent for spent, accuracy in curve if accuracy >= target), None)


def share_needed(random: list, guided: list) -> float | None:
    """The share of random's final stroke pixels with which guided first reaches random's
    final accuracy (None: never)."""
    needed = strokes_to_reach(guided, random[-1][1])
    return None if needed is None else needed / random[-1][0]


def pooled(curves: list[list[tuple[int, float]]]) -> list[tuple[float, float]]:
    """Mean stroke pixels and mean accuracy per round over runs (cut to the shortest)."""
    rounds = min(len(c) for c in curves)
    values = np.array([c[:rounds] for c in curves], np.float64)
    return [tuple(point) for point in values.mean(axis=0)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", default=",".join(FRAMES), help="frame numbers")
    parser.add_argument("--rounds", type=int, default=16, help="rounds after the first two windows")
    parser.add_argument(
        "--window", type=int, default=128, help="window side, px of the halved frame"
    )
    parser.add_argument(
        "--seeds", type=int, default=3, help="runs per frame (first windows, random choices)"
    )
    parser.add_argument(
        "--window-only",
        action="store_true",
        help="the guided labeller paints anywhere in the window, ignoring the overlay",
    )
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"needs ../shared ({SHARED} not found)", file=sys.stderr)
        return 2
    runs = {"random": [], "guided": []}
    for number in args.frames.split(","):
        rgb, labels = frame(number)
        for seed in range(args.seeds):
            curves = {
                name: run(
                    rgb,
                    labels,
                    args.window,
                    args.rounds,
                    name == "guided",
                    seed,
                    not args.window_only,
                )
                for name in runs
            }
            print(f"frame {number}, seed {seed}: (stroke px, accuracy) per round")
            for name, curve in curves.items():
                runs[name].append(curve)
                print(f"  {name:<7}" + " ".join(f"{s:>6d}:{a:.4f}" for s, a in curve))
            share = share_needed(curves["random"], curves["guided"])
            shown = "never" if share is None else f"{100 * share:.0f}% of random's strokes"
            print(f"  guided reaches random's final {curves['random'][-1][1]:.4f} with {shown}")
    mean = {name: pooled(curves) for name, curves in runs.items()}
    print(f"pooled over {len(runs['random'])} runs: (mean stroke px, mean accuracy) per round")
    for name, curve in mean.items():
        print(f"  {name:<7}" + " ".join(f"{s:>6.0f}:{a:.4f}" for s, a in curve))
    share = share_needed(mean["random"], mean["guided"])
    shown = "never" if share is None else f"{100 * share:.0f}% of random's strokes"
    print(f"pooled: guided reaches random's final {mean['random'][-1][1]:.4f} with {shown}")
    shares = [share_needed(r, g) for r, g in zip(runs["random"], runs["guided"], strict=True)]
    reached = [s for s in shares if s is not None]
    print(f"runs where guided reached random's final accuracy: {len(reached)}/{len(shares)}")
    if reached:
        print(f"median share of random's strokes then: {np.median(reached):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
