"""``dltools cp-mat`` / ``create_library/cp_mat.py``: put result files beside their images."""

from __future__ import annotations

import argparse

from dltools.cli._common import add_force, parse_args, reports_errors, show_progress
from dltools.pipeline.split import copy_results_to_split


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dltools cp-mat",
        description=(
            "Copy each <name>_mres.mat of GT_DIR into whichever of DATA_DIR/train and "
            "DATA_DIR/test holds the image <name>.* (run after `dltools split`)."
        ),
    )
    parser.add_argument(
        "-g",
        "--gt-dir",
        required=True,
        metavar="GT_DIR",
        help="folder holding the <name>_mres.mat files",
    )
    parser.add_argument(
        "-d",
        "--data-dir",
        required=True,
        metavar="DATA_DIR",
        help="folder holding train/ and test/",
    )
    add_force(parser)
    return parser


@reports_errors
def run(args: argparse.Namespace) -> None:
    copied, unmatched = copy_results_to_split(
        args.gt_dir, args.data_dir, force=args.force, progress=show_progress
    )
    for path in copied:
        print(f"copied {path}")
    for path in unmatched:
        print(f"no image for {path.name} in train/ or test/: not copied")
    print(f"{len(copied)} file(s) copied, {len(unmatched)} without an image")


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(build_parser(), argv))
