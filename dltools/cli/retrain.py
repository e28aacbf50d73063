"""``dltools retrain`` / ``train_dcnn_tfhub/retrain.py``: step 4, train a tile classifier."""

from __future__ import annotations

import argparse
from pathlib import Path

from dltools.cli._common import add_force, add_seed, parse_args, reports_errors, show_progress
from dltools.models.recipes import (
    FINE_TUNE_STEPS,
    LEGACY,
    MIN_SPLIT_IMAGES,
    MODULE_INPUT_RANGE,
    RECIPE,
    SPLIT_UNITS,
)

DEFAULT_MODULE = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dltools retrain",
        description=(
            "Train a tile classifier on IMAGE_DIR/<class>/*.jpg (as made by retile): a softmax "
            "layer on the features of a TF-Hub image module (bottlenecks, cached on disk), then "
            "the module's top layers fine-tuned with it on randomly mirrored and brightened "
            "tiles, classes drawn equally often (the recipe measured on unseen frames, README "
            "step 5); or a small CNN from scratch. --legacy trains as dl_tools did in 2018 "
            "(frozen module, tiles as they come). Tiles are split into training/validation/"
            "testing by a hash of their file names, so a tile keeps its split when more are "
            "added. Writes the model, the labels file (class-index order) and "
            "MODEL_metrics.json; the last line printed is 'Final test accuracy = x% (N=n)'."
        ),
    )
    parser.add_argument(
        "--legacy",
        action="store_true",
        help="the 2018 dl_tools training, for comparison: options not given take the original's "
        "values (no --balance, no distortions, --fine_tune_layers 0) (default: off)",
    )
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--image_dir", required=True, help="folder of class folders of tiles")
    io.add_argument(
        "--tfhub_module",
        default=DEFAULT_MODULE,
        metavar="HANDLE",
        help=(
            "TF-Hub image feature-vector module: a URL (downloaded once, then cached), a local "
            "SavedModel folder (e.g. an unpacked download), or 'scratch' to train a small CNN "
            "with no download (default: %(default)s)"
        ),
    )
    io.add_argument(
        "--output_graph",
        required=True,
        metavar="MODEL",
        help=(
            "trained model: a SavedModel folder (self-contained; recommended), a .keras file "
            "(stores the module's handle, which must be reachable when loading), or a .pb frozen "
            "graph in the original dl_tools layout (Placeholder -> final_result)"
        ),
    )
    io.add_argument(
        "--output_labels", required=True, help="labels file to write, one class per line"
    )
    io.add_argument(
        "--output_metrics",
        metavar="JSON",
        help="scores and training history (default: MODEL_metrics.json beside --output_graph, "
        "MODEL being its name without suffix)",
    )
    io.add_argument(
        "--bottleneck_dir",
        help=(
            "cache of module features, keyed by module, input size and tile content; reused "
            "across runs and resumed after an interruption (default: no cache)"
        ),
    )
    io.add_argument(
        "--summaries_dir",
        help=(
            "TensorBoard logs: train/validation loss and accuracy and a validation confusion "
            "matrix at each evaluation (default: none)"
        ),
    )
    io.add_argument(
        "--image_size",
        type=int,
        metavar="S",
        help=(
            "tiles are resized to S x S for the network (default: the size the module "
            "declares; for a module that takes any size, the tile side kept within "
            f"{MODULE_INPUT_RANGE[0]}-{MODULE_INPUT_RANGE[1]} px, {MODULE_INPUT_RANGE[1]} with "
            "--legacy; the tile side for scratch). S = 96 on 96-px tiles costs about 1/4 of "
            "224, scored better on unseen river frames and level on 4 of 5 city tiles (README, "
            "Accuracy)"
        ),
    )
    train = parser.add_argument_group("training (as the original retrain.py)")
    train.add_argument(
        "--how_many_training_steps",
        type=int,
        default=4000,
        metavar="N",
        help="training steps (batches) of the softmax layer, or of the whole CNN for scratch "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--learning_rate",
        type=float,
        default=0.01,
        help="gradient-descent rate (momentum 0.9 for scratch) (default: %(default)s)",
    )
    train.add_argument(
        "--train_batch_size",
        type=int,
        default=100,
        metavar="N",
        help="tiles per training step (default: %(default)s)",
    )
    train.add_argument(
        "--validation_percentage",
        type=float,
        default=10,
        help="percentage of the tiles held out to choose and stop training (split by a hash of "
        "the file name) (default: %(default)s)",
        metavar="P",
    )
    train.add_argument(
        "--split",
        choices=SPLIT_UNITS,
        default="tile",
        help="image: the validation and testing tiles come from whole source images (hash of "
        "the image name) that training never sees, when the library has tiles of at least "
        f"{MIN_SPLIT_IMAGES} images; tile: any tile may go to any split (the original) "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--testing_percentage",
        type=float,
        default=10,
        metavar="P",
        help="percentage of the tiles held out for the final test accuracy (default: %(default)s)",
    )
    train.add_argument(
        "--eval_step_interval",
        type=int,
        default=10,
        metavar="N",
        help="score the validation tiles every N steps (default: %(default)s)",
    )
    aug = parser.add_argument_group(
        "random distortions of training tiles (applied while fine-tuning; with "
        "--fine_tune_layers 0 they apply to the softmax layer's training instead, whose features "
        "are then computed for every batch: slow)"
    )
    aug.add_argument(
        "--flip_left_right",
        action=argparse.BooleanOptionalAction,
        help="mirror a random half of the training tiles (default: on; off with --legacy)",
    )
    aug.add_argument(
        "--random_crop",
        type=float,
        default=0,
        metavar="P",
        help="crop a random margin of up to P%% of each training tile (default: %(default)s, off)",
    )
    aug.add_argument(
        "--random_scale",
        type=float,
        default=0,
        metavar="P",
        help="enlarge each training tile by a random 0..P%% (default: %(default)s, off)",
    )
    aug.add_argument(
        "--random_brightness",
        type=float,
        metavar="P",
        help="multiply the brightness of each training tile by a random 1 +- P%% (default: "
        f"{RECIPE['random_brightness']:g}; {LEGACY['random_brightness']:g}, off, with --legacy)",
    )
    more = parser.add_argument_group("beyond the original")
    more.add_argument(
        "--balance",
        action=argparse.BooleanOptionalAction,
        help="draw every class equally often in training batches (oversamples rare classes; "
        "default: on; off with --legacy: tiles as they come)",
    )
    more.add_argument(
        "--early_stopping",
        type=int,
        default=0,
        metavar="PATIENCE",
        help=(
            "stop after PATIENCE evaluations without a better validation accuracy and keep the "
            "best weights (default: %(default)s, off)"
        ),
    )
    more.add_argument(
        "--fine_tune_layers",
        type=int,
        metavar="N",
        help=(
            "after the softmax layer has trained, also train the top N layers with weights of "
            "the module (Adam), on the tiles themselves; 0 keeps the module frozen (default: "
            f"{RECIPE['fine_tune_layers']} with a module, 0 with scratch or --legacy)"
        ),
    )
    more.add_argument(
        "--fine_tune_steps",
        type=int,
        default=FINE_TUNE_STEPS,
        metavar="N",
        help="training steps of the fine-tuning phase (with --fine_tune_layers) (default: "
        "%(default)s)",
    )
    more.add_argument(
        "--fine_tune_learning_rate",
        type=float,
        default=1e-4,
        help="Adam rate (default: %(default)s)",
    )
    add_seed(parser)
    add_force(parser)
    return parser


@reports_errors
def run(args: argparse.Namespace) -> None:
    from dltools.models.classifier import Augmentation
    from dltools.pipeline.retrain import ModelOutputs, RetrainSettings, retrain

    model = Path(args.output_graph)
    outputs = ModelOutputs(
        model=model,
        labels=Path(args.output_labels),
        metrics=Path(args.output_metrics or model.parent / f"{model.stem}_metrics.json"),
        bottlenecks=args.bottleneck_dir and Path(args.bottleneck_dir),
        summaries=args.summaries_dir and Path(args.summaries_dir),
    )
    recipe = RECIPE | (LEGACY if args.legacy else {"fine_tune_layers": None})  # None: per module
    choice = {
        key: recipe[key] if getattr(args, key, None) is None else getattr(args, key)
        for key in recipe
    }
    settings = RetrainSettings(
        steps=args.how_many_training_steps,
        learning_rate=args.learning_rate,
        batch_size=args.train_batch_size,
        validation_percentage=args.validation_percentage,
        testing_percentage=args.testing_percentage,
        eval_interval=args.eval_step_interval,
        augmentation=Augmentation(
            choice["flip_left_right"],
            args.random_crop,
            args.random_scale,
            choice["random_brightness"],
        ),
        balance=choice["balance"],
        early_stopping=args.early_stopping,
        split=args.split,
        fine_tune_layers=choice["fine_tune_layers"],
        fine_tune_steps=args.fine_tune_steps,
        fine_tune_learning_rate=args.fine_tune_learning_rate,
        image_size=args.image_size,
        tile_sized_input=choice["tile_sized_input"],
        seed=args.seed,
    )
    metrics = retrain(
        args.image_dir,
        args.tfhub_module,
        outputs,
        settings,
        force=args.force,
        log=print,
        progress=show_progress,
    )
    print(f"model: {outputs.model}\nlabels: {outputs.labels}\nmetrics: {outputs.metrics}")
    test = metrics["test"]
    if test is None:
        print("Final test accuracy = n/a (N=0)")
        return
    for name, row in test["per_class"].items():
        recall, f1, n = row["recall"], row["f1"], row["support"]
        print(f"  {name:<20} recall {100 * recall:5.1f}%  F1 {f1:.3f}  N={n}")
    print(f"macro F1 = {test['macro_f1']:.3f}")
    print(f"Final test accuracy = {100 * test['accuracy']:.1f}% (N={test['n']})")


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(build_parser(), argv))
