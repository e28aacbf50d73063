"""Benchmark step 6: megapixels per second on a 36 MP image, batched tiles vs one per call.

The image is the held-out St Margaret's frame 27113 of ../shared, enlarged to 7360 x 4912
(36 MP, the size of a Nikon D800 photograph). The tile model is a MobileNetV2 (../shared) tile
classifier trained by ``dltools retrain`` on the 7 other frames (96-px tiles, --balance, 1000
steps; about a minute), or ``--model``/``--labels``. In one run, on the same image:

- tile classification alone: every 96-px tile predicted in batches of ``--batch`` vs one tile
  per predict call (the original's loop);
- the whole of step 6 (tiles, evidence, refinement to a full-size class map) for each
  ``--refine`` method, with batched tiles and with the one-tile-per-call loop.

    python bench/segment.py                        # about 5 minutes on 2 CPU cores
    python bench/segment.py --refine mlp crf none --model tile_model --labels labels.txt
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"
FRAMES = SHARED / "data" / "stmarg" / "train"
MODULE = SHARED / "models" / "mobilenet_v2_100_feature_vector"
SIZE = (4912, 7360)  # (rows, cols): 36.2 MP


class OneTilePerCall:
    """A tile model whose ``predict`` makes one call per tile (the original's loop)."""

    def __init__(self, model):
        self.model = model
        self.num_classes = model.num_classes

    def predict(self, tiles: np.ndarray, batch_size: int = 64) -> np.ndarray:
        out = [self.model.predict(tiles[i : i + 1], 1) for i in range(len(tiles))]
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), np.float32)


def train_model(folder: Path) -> tuple[Path, Path]:
    """A tile model trained on the first 7 St Margaret's frames (retile + retrain)."""
    from dltools.cli import main as dltools_main

    images = folder / "train"
    images.mkdir()
    for image in sorted(FRAMES.glob("StMarg_*.jpg"))[:7]:
        number = image.stem.split("_")[1]
        for file in (image, FRAMES / f"SCLS_StMarg{number}.tif"):
            (images / file.name).symlink_to(file)
    (folder / "classes.txt").write_text("water\nsediment\nvegetation\n")
    steps = [
        ["retile", "-i", images, "-l", folder / "classes.txt", "-t", 96, "-a", 0.9],
        ["retrain", "--image_dir", images / "tile_96", "--tfhub_module", MODULE,
         "--image_size", 96, "--how_many_training_steps", 1000, "--balance",
         "--output_graph", folder / "model", "--output_labels", folder / "labels.txt"],
    ]  # fmt: skip
    for step in steps:
        if dltools_main([str(a) for a in step]) != 0:
            raise SystemExit(f"dltools {step[0]} failed")
    return folder / "model", folder / "labels.txt"


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="tile model (default: train one on ../shared)")
    parser.add_argument("--labels", help="its labels file")
    parser.add_argument(
        "--refine", nargs="+", default=["mlp", "crf"], help="refiners to time (default: mlp crf)"
    )
    parser.add_argument("--batch", type=int, default=64, help="tiles per predict call")
    parser.add_argument("--tile", type=int, default=96, help="tile size in pixels")
    args = parser.parse_args(argv)
    if not FRAMES.is_dir():
        raise SystemExit(f"../shared not found: the benchmark needs {FRAMES}")

    import cv2

    from dltools.engines.tiles import tile_grid
    from dltools.io.images import read_image
    from dltools.models.loader import load_model
    from dltools.pipeline.segment import SegmentParams, classify_tiles, segment_image

    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            args.model, args.labels = train_model(Path(tmp))
        model = load_model(args.model)
        frame = read_image(FRAMES / "StMarg_27113.jpg")
        image = cv2.resize(frame, SIZE[::-1], interpolation=cv2.INTER_CUBIC)
        megapixels = image.shape[0] * image.shape[1] / 1e6
        grid = tile_grid(*image.shape[:2], args.tile)
        count = grid.shape[0] * grid.shape[1]
        print(f"image {image.shape[1]} x {image.shape[0]} ({megapixels:.1f} MP), {count} tiles")
        model.predict(image[None, : args.tile, : args.tile], 1)  # warm up
        _, batched = timed(classify_tiles, image, grid, model, batch_size=args.batch)
        _, looped = timed(classify_tiles, image, grid, OneTilePerCall(model))
        print(
            f"tiles: batched ({args.batch}) {count / batched:.0f} tiles/s ({batched:.1f} s); "
            f"one per call {count / looped:.0f} tiles/s ({looped:.1f} s); "
            f"ratio {looped / batched:.1f}x"
        )
        print(f"{'step 6':<12} {'batched':>22} {'one tile per call':>22} {'ratio':>6}")
        for method in args.refine:
            params = SegmentParams(tile=args.tile, refine=method, batch_size=args.batch)
            _, fast = timed(segment_image, image, model, params, progress=False)
            _, slow = timed(segment_image, image, OneTilePerCall(model), params, progress=False)
            print(
                f"{method:<12} {megapixels / fast:>8.2f} MP/s ({fast:5.1f} s) "
                f"{megapixels / slow:>8.2f} MP/s ({slow:5.1f} s) {slow / fast:>5.1f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
