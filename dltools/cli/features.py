"""``dltools features``: embed tiles of a tile library or of images as feature vectors."""

from __future__ import annotations

import argparse

from dltools.cli._common import (
    DefaultsHelpFormatter,
    add_force,
    parse_args,
    reports_errors,
    show_progress,
)
from dltools.errors import DltoolsError
from dltools.pipeline.features import INDEX_ABOVE, INDEXING, embed, feature_paths, index_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dltools features",
        formatter_class=DefaultsHelpFormatter,
        description="Embed tiles as feature vectors for `dltools similar`: the tiles of a tile "
        "library (class folders made by retile), or a grid of windows over an image, a "
        "GeoTIFF (read window by window) or a folder of images. Writes OUT.npy (unit vectors), "
        "OUT.csv (the manifest: path, row, col, size, class of each vector) and OUT.json.",
    )
    parser.add_argument("source", metavar="DIR|IMAGE", help="tile library, image or image folder")
    parser.add_argument(
        "-m",
        "--model",
        required=True,
        metavar="MODEL_OR_MODULE",
        help="a TF-Hub module folder (its feature vectors), a tile model trained by retrain "
        "(its class probabilities, or --layer) or Keras' MobileNetV2 ImageNet weights without "
        "the top (a local .h5, as fcn train --encoder-weights takes)",
    )
    parser.add_argument(
        "--layer",
        metavar="NAME",
        help="embed with this layer, averaged over each tile: any layer of a .keras tile model "
        "or of MobileNetV2 ImageNet weights (.h5, e.g. block_6_expand_relu); 'features' (the "
        "vector the softmax reads) or 'final_result' of a SavedModel tile model (default: the "
        "model's output; out_relu for .h5 weights; a TF-Hub module has no layers to choose)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="base name to write")
    parser.add_argument(
        "--tile",
        type=int,
        default=224,
        metavar="PX",
        help="window size over images, and the module's input size (default: %(default)s)",
    )
    parser.add_argument(
        "--stride",
        type=int,
        metavar="PX",
        help="step between windows over images (default: the tile size, no overlap)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="tiles per network call (default: %(default)s)"
    )
    parser.add_argument(
        "--index",
        choices=INDEXING,
        default="auto",
        help=f"also write OUT.faiss, an index that `similar` searches instead of every vector "
        f"(approximate, for large sets; needs faiss-cpu, pip install 'dltools[index]'): "
        f"always, never, or auto: above {INDEX_ABOVE:,} vectors (default: %(default)s)",
    )
    add_force(parser)
    return parser


@reports_errors
def run(args: argparse.Namespace) -> None:
    if args.tile < 8 or (args.stride is not None and args.stride < 1) or args.batch_size < 1:
        raise DltoolsError("--tile must be at least 8, --stride and --batch-size at least 1")
    found = embed(
        args.source,
        args.model,
        args.output,
        args.tile,
        args.stride,
        args.batch_size,
        args.force,
        show_progress,
        args.layer,
        args.index,
    )
    count, dimensions = found.vectors.shape
    print(f"{count} tiles, {dimensions} features each ({found.info['kind']})")
    written = [*feature_paths(args.output), *([index_path(args.output)] if found.index else [])]
    for path in written:
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(build_parser(), argv))
