"""Benchmark bottleneck extraction: tiles per second in batches vs one tile at a time.

Tiles are 96-px JPGs cut from a synthetic coastal scene (dltools.synthetic.scenes). For each network
input size, measured in one run on the same tiles: ``compute_bottlenecks`` (read the files,
resize, run the module) with batches of ``--batch`` tiles and with one tile at a time, and a
second batched pass that finds everything in the on-disk cache. Prints tiles/s and the ratios.

    python bench/tiles.py                      # ../shared MobileNetV2, 512 tiles, sizes 96 and 224
    python bench/tiles.py --module URL_OR_DIR --tiles 256 --sizes 96
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

SHARED_MODULE = (
    Path(__file__).resolve().parents[2] / "shared" / "models" / "mobilenet_v2_100_feature_vector"
)


def make_tiles(folder: Path, count: int, size: int = 96) -> list[Path]:
    """``count`` size-px JPG tiles from synthetic scenes, written to ``folder``."""
    import cv2

    from dltools.synthetic.scenes import coastal_scene

    paths: list[Path] = []
    seed = 0
    while len(paths) < count:
        image, _ = coastal_scene(960, 1440, seed=seed)
        for row in range(0, 960 - size + 1, size):
            for col in range(0, 1440 - size + 1, size):
                if len(paths) < count:
                    path = folder / f"s{seed}_{row}_{col}.jpg"
                    tile = image[row : row + size, col : col + size, ::-1]
                    cv2.imwrite(str(path), tile, [cv2.IMWRITE_JPEG_QUALITY, 95])
                    paths.append(path)
        seed += 1
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", default=str(SHARED_MODULE), help="TF-Hub module handle")
    parser.add_argument("--tiles", type=int, default=512, help="number of tiles")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the batched runs")
    parser.add_argument("--sizes", default="96,224", help="network input sizes")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from dltools.io.tile_library import read_tiles
    from dltools.models.bottlenecks import BottleneckCache, compute_bottlenecks
    from dltools.models.hub import feature_layer
    from dltools.models.loader import prepare_images

    layer = feature_layer(args.module)
    print(f"module {args.module}\n{args.tiles} tiles of 96 px, batches of {args.batch}")
    print(f"{'input':>6} {'batched':>10} {'one by one':>11} {'ratio':>6} {'cached':>10}")
    with tempfile.TemporaryDirectory(prefix="dltools-bench-tiles-") as tmp:
        paths = make_tiles(Path(tmp), args.tiles)
        for size in (int(s) for s in args.sizes.split(",")):
            extract_graph = tf.function(
                lambda x, size=size: layer(prepare_images(x, (size, size))), reduce_retracing=True
            )

            def extract(batch, graph=extract_graph):
                return graph(tf.constant(batch)).numpy()

            extract(read_tiles(paths[: args.batch]))  # trace and warm up both batch shapes
            extract(read_tiles(paths[:1]))
            rates = []
            # batched, one by one, batched again: the last finds everything in the first's cache
            for batch, cache_name in ((args.batch, "a"), (1, "b"), (args.batch, "a")):
                cache = BottleneckCache(Path(tmp) / f"cache_{size}_{cache_name}")
                start = time.perf_counter()
                compute_bottlenecks(paths, extract, cache, batch_size=batch)
                rates.append(len(paths) / (time.perf_counter() - start))
            batched, single, cached = rates
            print(
                f"{size:>6} {batched:>8.0f}/s {single:>9.0f}/s {batched / single:>5.1f}x "
                f"{cached:>8.0f}/s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
