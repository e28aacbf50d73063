"""``dltools eval-tiles`` / ``eval_imrecog/test_class_tiles.py``: step 5, score a tile model."""

from __future__ import annotations

import argparse
from pathlib import Path

from dltools.cli._common import add_force, add_seed, parse_args, reports_errors
from dltools.io.labels import read_labels
from dltools.io.outputs import ensure_new
from dltools.io.tile_library import list_tile_classes
from dltools.pipeline.evaluate_tiles import (
    FIGURE,
    METRICS,
    evaluate_tiles,
    report_paths,
    write_reports,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dltools eval-tiles",
        description=(
            "Score a tile classifier on TILE_DIR/<class>/*.jpg: N random tiles per class (all "
            "if fewer), predicted in batches. Folder names are matched to the labels file by "
            "exact name. Prints per-class accuracy, F1 and mean top-1 probability and their "
            f"means; writes {FIGURE} (row-normalised confusion matrix) and {METRICS}."
        ),
    )
    parser.add_argument(
        "-i",
        "--input",
        dest="tile_dir",
        required=True,
        metavar="TILE_DIR",
        help="tile library to score: one folder of tiles per class (as made by retile)",
    )
    parser.add_argument(
        "-l", "--labels", required=True, metavar="TXT", help="labels file written with the model"
    )
    parser.add_argument(
        "-m",
        "--model",
        required=True,
        help="SavedModel folder, .keras file or frozen .pb graph (also from the original tool)",
    )
    parser.add_argument(
        "-n",
        "--number",
        type=int,
        default=100,
        metavar="N",
        help="tiles per class (default: %(default)s)",
    )
    parser.add_argument(
        "-o", "--out-dir", metavar="DIR", help="where the outputs go (default: TILE_DIR)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="tiles per batch (default: %(default)s)"
    )
    add_seed(parser)
    add_force(parser)
    return parser


@reports_errors
def run(args: argparse.Namespace) -> None:
    out = Path(args.out_dir or args.tile_dir)
    ensure_new(report_paths(out), args.force)
    labels = read_labels(args.labels)
    list_tile_classes(args.tile_dir)  # a bad tile folder is named before TensorFlow loads

    from dltools.models.loader import load_model

    model = load_model(args.model)
    model.check_labels(labels, args.labels)
    result = evaluate_tiles(args.tile_dir, model, labels, args.number, args.seed, args.batch_size)
    scores = result.scores
    print(f"{'class':<20} {'tiles':>6} {'accuracy':>9} {'F1':>6} {'top-1 p':>8}")
    for k, name in enumerate(labels):
        if result.evaluated[k]:
            print(
                f"{name:<20} {scores.support[k]:6d} {scores.recall[k]:9.3f} {scores.f1[k]:6.3f} "
                f"{result.mean_top1[k]:8.3f}"
            )
    means = result.to_dict()["means_over_evaluated_classes"]
    print(
        f"{'mean':<20} {scores.support.sum():6d} {means['accuracy']:9.3f} {means['f1']:6.3f} "
        f"{means['mean_top1_probability']:8.3f}"
    )
    print(f"overall accuracy {scores.accuracy:.3f}, macro F1 {scores.macro_f1:.3f}")
    write_reports(out, result, str(args.tile_dir), str(args.model))
    print("wrote " + " and ".join(map(str, report_paths(out))))


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(build_parser(), argv))
