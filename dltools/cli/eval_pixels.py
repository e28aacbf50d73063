"""``dltools eval-pixels`` / ``eval_semseg/test_pixels.py``: step 7, score pixel labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from dltools.cli._common import (
    add_dask,
    add_force,
    add_label_colors,
    dask_executor,
    label_classes,
    parse_args,
    reports_errors,
)
from dltools.engines.metrics import iou_from_confusion, pixel_summary
from dltools.io.discovery import PRED_GLOB, TRUE_GLOB, pair_predictions
from dltools.io.outputs import ensure_new
from dltools.pipeline.evaluate_pixels import (
    F1_FIGURE,
    METRICS,
    POOLED,
    SUMMARY,
    evaluate_pixels,
    report_paths,
    write_reports,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dltools eval-pixels",
        description=(
            "Score automatic labels against manual ones, pixel by pixel (step 7). Each "
            f"prediction ({PRED_GLOB} in DIR by default) is paired by name with its manual label "
            f"({TRUE_GLOB} by default): X_ares_96.mat <- X_mres.mat, SCLS_X.tif or X_label.png. "
            "Classes are matched by name; pixels unlabelled in the manual label are left out. "
            "Prints per-image and pooled scores (per-class precision, recall, F1, IoU, support; "
            "accuracy, macro and pixel-weighted F1, mean IoU, Cohen's kappa) and writes "
            f"{METRICS} (one row per image and class), {SUMMARY}, <prediction>_cm.png per "
            f"image and {F1_FIGURE}."
        ),
    )
    parser.add_argument(
        "-i",
        "--input",
        dest="pred_dir",
        required=True,
        metavar="DIR",
        help="the folder of predictions (step 6's *_ares*.mat files, label rasters, ...; see "
        "--pred-glob)",
    )
    parser.add_argument(
        "-o", "--out-dir", metavar="REPORT_DIR", help="where reports go (default: DIR)"
    )
    parser.add_argument(
        "--true-dir", metavar="DIR", help="folder of the manual labels (default: DIR)"
    )
    parser.add_argument(
        "--pred-glob",
        default=PRED_GLOB,
        help="prediction files: *_ares*.mat, or label rasters such as '*_ares_96.tif' "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--true-glob",
        default=TRUE_GLOB,
        help="manual label files: *_mres*.mat, label rasters such as 'SCLS_*.tif', or colour "
        "masks such as '*.png' (with --labeldefs) "
        "(default: %(default)s)",
    )
    add_label_colors(parser)
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score manual classes that the predictions do not know (e.g. a class the tile "
        "model had no tiles for) as errors, instead of stopping: without it a class that occurs "
        "on one side but is not named on the other is an error, to catch mismatched names",
    )
    add_dask(parser, "one prediction and its manual label each")
    add_force(parser)
    return parser


def _print_table(evaluation) -> None:
    head = f"{'image':<32} {'pixels':>10} {'accuracy':>9} {'macro F1':>9} {'pixel F1':>9}"
    print(head + f" {'mIoU':>6} {'kappa':>6}")
    rows = [(i.pred.stem, i.scores) for i in evaluation.images]
    for name, scores in [*rows, (POOLED, evaluation.pooled)]:
        s = pixel_summary(scores)
        print(
            f"{name:<32} {s['pixels']:>10} {s['accuracy']:>9.4f} {s['macro_f1']:>9.4f} "
            f"{s['weighted_f1']:>9.4f} {s['mean_iou']:>6.3f} {s['kappa']:>6.3f}"
        )
    pooled = evaluation.pooled
    iou = iou_from_confusion(pooled.confusion)
    head = f"{'class':<20} {'precision':>9} {'recall':>7} {'F1':>6} {'IoU':>6} {'support':>10}"
    print(f"\npooled {head}")
    for k, name in enumerate(pooled.class_names):
        print(
            f"       {name:<20} {pooled.precision[k]:>9.3f} {pooled.recall[k]:>7.3f} "
            f"{pooled.f1[k]:>6.3f} {iou[k]:>6.3f} {pooled.support[k]:>10}"
        )


@reports_errors
def run(args: argparse.Namespace) -> None:
    out = Path(args.out_dir or args.pred_dir)
    pairs = pair_predictions(args.pred_dir, args.true_dir, args.pred_glob, args.true_glob)
    ensure_new(report_paths(out, pairs), args.force)
    labels, colors = label_classes(args)
    for pred, true in pairs:
        print(f"{pred.name} <- {true.name}")
    with dask_executor(args) as executor:
        evaluation = evaluate_pixels(
            pairs, labels, args.allow_missing, executor, colors, args.strict
        )
    _print_table(evaluation)
    write_reports(out, evaluation)
    print(f"wrote {out / METRICS}, {out / SUMMARY}, {out / F1_FIGURE}")
    print(f"wrote {len(pairs)} confusion matrix figure(s) <prediction>_cm.png in {out}")


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(build_parser(), argv))
