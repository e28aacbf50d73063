"""``dltools split`` / ``create_library/images_split_train_test.py``: step 1."""

from __future__ import annotations

import argparse

from dltools.cli._common import add_seed, parse_args, reports_errors, require_input, show_progress
from dltools.pipeline.split import split_folder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dltools split",
        description=(
            "Split the images of a folder into train/ and test/ folders beside it "
            "(DIR/../train, DIR/../test). int(p*N) randomly chosen images go to train/, the rest "
            "to test/. Non-image files are ignored. Existing train/ or test/ folders are an error."
        ),
    )
    parser.add_argument(
        "-i",
        "--input",
        dest="folder",
        metavar="DIR",
        help="folder of images (jpg, jpeg, png, tif, tiff); required (the original asked for it "
        "in a file dialog)",
    )
    parser.add_argument(
        "-p",
        "--proportion",
        type=float,
        default=0.5,
        metavar="P",
        help="fraction of the images that go to train/, 0 < P < 1 (default: %(default)s)",
    )
    parser.add_argument(
        "--move",
        action="store_true",
        help="move the images instead of copying them (DIR is left without them)",
    )
    add_seed(parser)
    return parser


@reports_errors
def run(args: argparse.Namespace) -> None:
    require_input(args.folder, "-i", "DIR")
    split = split_folder(
        args.folder, args.proportion, seed=args.seed, move=args.move, progress=show_progress
    )
    verb = "moved" if args.move else "copied"
    for paths in (split.train, split.test):
        print(f"{len(paths):5d} image(s) {verb} to {paths[0].parent}")


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(build_parser(), argv))
