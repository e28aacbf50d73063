"""``dltools fcn make-labels|train|infer|infer-crf`` / ``semseg_fullyconv/*.py``: step 8.

Fully convolutional segmentation: a U-Net with a MobileNetV2 encoder trained on native-
resolution crops, applied to images of any size in overlapping windows.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

from dltools.cli._common import (
    add_bands,
    add_folder_options,
    add_force,
    add_seed,
    add_uncertainty,
    band_options,
    ranking_images,
    reports_errors,
    run_each,
    settings_from,
    show_progress,
)
from dltools.cli._crf_options import add_crf_options, crf_params
from dltools.cli.polygonize import add_vector_options, vector_params, write_vector
from dltools.engines.crf import CRFParams
from dltools.errors import DltoolsError
from dltools.io.discovery import find_labelled_images, original_layout, split_pairs
from dltools.io.geo import read_profile
from dltools.io.images import inference_bands, training_bands
from dltools.io.labels import Classes, default_colors, read_classes
from dltools.io.results import read_result
from dltools.pipeline.fcn import (
    CRF_BLOCK,
    CRF_GT_PROB,
    CRF_SCALE,
    TRAIN_ON,
    Tiling,
    TrainSettings,
    check_label_colors,
    crf_windows,
    ensemble_bands,
    infer_file,
    infer_file_crf,
    infer_images,
    infer_parts,
    load_runs,
    make_labels,
    output_paths,
    read_config,
    train,
)
from dltools.pipeline.polygonize import vector_path
from dltools.progress import quiet
from dltools.raster.bands import BandChoice
from dltools.scale.cache import Cached
from dltools.scale.executor import Executor

DEFAULTS = TrainSettings()
TILING = Tiling()
CRF_DEFAULTS = CRFParams(gt_prob=CRF_GT_PROB)


def _class_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("classes (labeldefs.txt, or labels.txt with colors.txt)")
    group.add_argument(
        "--labeldefs",
        metavar="FILE",
        help="'name, R, G, B' per line: the classes, and the colours of colour masks (RGB "
        "images or palette PNGs; colours not listed are unlabelled)",
    )
    group.add_argument(
        "-l", "--labels", metavar="FILE", help="labels.txt: one class name per line (value k)"
    )
    group.add_argument(
        "-c",
        "--colors",
        metavar="FILE",
        help="colors.txt: one matplotlib colour per class (default: tab10 colours); with -l",
    )
    group.add_argument(
        "--strict",
        action="store_true",
        help="a colour of a colour mask that is no class colour is an error naming the colour "
        "and its pixel count (default: such pixels are unlabelled)",
    )


def _classes(args: argparse.Namespace) -> Classes | None:
    if args.colors and not args.labels:
        raise DltoolsError("-c colors.txt needs -l labels.txt")
    return read_classes(args.labels, args.colors, args.labeldefs)


# --- make-labels ---------------------------------------------------------------------------


def _make_labels_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.description = (
        "Write <name>_gtFine_color.png (each class in its labeldefs colour, chosen by class "
        "name; unlabelled black) and <name>_gtFine_labelIds.png (value k = class k of the "
        "labeldefs, 0 = unlabelled) for every <name>_mres.mat in DIR and every label raster "
        "paired there with an image <name>.*. The original tool coloured by index, which "
        "swapped classes when a file listed its labels in another order."
    )
    parser.add_argument("folder", metavar="DIR", help="folder of _mres.mat files / label rasters")
    _class_options(parser)
    parser.add_argument("--out-dir", metavar="DIR", help="write here instead of into DIR")
    add_force(parser)
    return parser


@reports_errors
def run_make_labels(args: argparse.Namespace) -> None:
    classes = _classes(args)
    if classes is None:
        raise DltoolsError("name the classes and their colours: --labeldefs labeldefs.txt")
    written = make_labels(args.folder, classes, args.out_dir, args.force, args.strict)
    print(f"{len(written) // 2} label image pair(s) written to {written[0].parent}")


# --- train ---------------------------------------------------------------------------------


def _train_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.description = (
        "Train the fully convolutional network (U-Net with a MobileNetV2 encoder) on random "
        "crops at native resolution, class-balanced, flipped and colour-jittered; unlabelled "
        "pixels are ignored by the loss and rare classes weighted up. DIR is the original "
        "layout (DIR/samples/RGB/{train,val}/ with DIR/labels/gtFine/{train,val}/) or a plain "
        "folder of images with their <name>_mres.mat files or label rasters (value k = class "
        "k), of which --val-fraction of the images are held out for validation. Writes the "
        "run folder RUN: model.keras (best validation mean IoU), checkpoint.keras (last "
        "epoch), labeldefs.txt, config.json and TensorBoard logs in logs/ (losses, per-class "
        "IoU, a predicted map of one validation image per epoch)."
    )
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--name", required=True, metavar="RUN", help="run folder to write")
    io.add_argument(
        "--data-dir", metavar="DIR", help="training data (see above); required unless --resume"
    )
    io.add_argument(
        "--label-dir",
        metavar="DIR",
        help="plain folders: the label files are here instead of beside the images",
    )
    io.add_argument(
        "--encoder-weights",
        metavar="PATH",
        help=(
            "ImageNet weights of the encoder: a local Keras MobileNetV2 file, e.g. "
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 (nothing is "
            "ever downloaded), or 'none' to train from scratch; required unless --resume"
        ),
    )
    _class_options(parser)
    io.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN from its checkpoint up to --epochs (its data and settings are reused)",
    )
    opts = parser.add_argument_group("training")

    def option(flag: str, kind: type, help: str, **more) -> None:  # default: TrainSettings'
        default = getattr(DEFAULTS, flag[2:].replace("-", "_"))
        opts.add_argument(flag, type=kind, default=default, help=help, **more)

    option("--epochs", int, "epochs (default: %(default)s)")
    option("--batch-size", int, "crops per batch (default: %(default)s)")
    option(
        "--tile-size",
        int,
        "side of the training crops in pixels, a multiple of 32 (default: %(default)s)",
    )
    option(
        "--steps-per-epoch",
        int,
        "batches per epoch (0: one pass over the training pixels; default: %(default)s)",
    )
    option(
        "--freeze-epochs",
        int,
        "first epochs with the pretrained encoder frozen (default: %(default)s)",
    )
    option(
        "--learning-rate",
        float,
        "Adam learning rate while the encoder is frozen, or from scratch (default: %(default)s)",
    )
    option(
        "--fine-tune-learning-rate",
        float,
        "Adam learning rate once the pretrained encoder trains too (default: %(default)s)",
    )
    option(
        "--patience",
        int,
        "stop after this many epochs without a better validation mean IoU (0: never; "
        "default: %(default)s)",
    )
    option(
        "--class-weight-power",
        float,
        "class weights (N / (K n_k)) ** P: 1 inverse frequency, 0 none (default: %(default)s)",
    )
    opts.add_argument("--no-flips", action="store_true", help="do not flip training crops")
    option(
        "--train-on",
        str,
        "labels: the dense label maps (or the CRF labels of _mres.mat files); strokes: "
        "only the strokes painted in step 2 (the 'sparse' array of _mres.mat files), every "
        "other pixel ignored by the loss, so the CRF stage can be skipped for training data "
        "(default: %(default)s)",
        choices=TRAIN_ON,
    )
    option(
        "--crf-weight",
        float,
        "with --train-on strokes: also learn the CRF labels of the _mres.mat files (their "
        "'class') on the pixels without strokes, as a second target weighted W in [0, 1] "
        "against the strokes' 1 (0: strokes only; default: %(default)s)",
        metavar="W",
    )
    option(
        "--jitter",
        float,
        "brightness/contrast/saturation change by up to this fraction (default: %(default)s)",
    )
    option(
        "--val-fraction",
        float,
        "plain folders: share of the images held out for validation (default: %(default)s)",
    )
    option("--val-crops", int, "validation crops per validation image (default: %(default)s)")
    option(
        "--alpha",
        float,
        "MobileNetV2 width: 0.35, 0.5, 0.75 or 1.0 (the weights file must match; "
        "default: %(default)s)",
    )
    add_bands(parser, training=True)
    add_seed(parser)
    add_force(parser)
    return parser


def _training_data(args: argparse.Namespace, classes: Classes | None):
    """(train pairs, val pairs, classes) for a new run."""
    if not args.data_dir:
        raise DltoolsError("--data-dir is required (unless --resume)")
    layout = original_layout(args.data_dir)
    if layout is not None:
        train_pairs, val_pairs = layout["train"], layout["val"]
    else:
        pairs, unlabelled = find_labelled_images(args.data_dir, args.label_dir, prefer=True)
        if not pairs:
            raise DltoolsError(
                f"{args.data_dir}: no image has a label file (<name>_mres.mat or a label "
                "raster whose name contains the image's), and there is no samples/RGB folder"
            )
        if unlabelled:
            print(f"{len(unlabelled)} image(s) without labels are left out")
        train_pairs, val_pairs = split_pairs(pairs, args.val_fraction, args.seed)
    if classes is None:
        mat = next((lab for _, lab in train_pairs if lab.suffix.lower() == ".mat"), None)
        if mat is None:
            raise DltoolsError(
                "name the classes: --labeldefs labeldefs.txt or -l labels.txt (label value k "
                "is line k)"
            )
        names = read_result(mat).labels
        classes = Classes(names, default_colors(len(names)))
    return train_pairs, val_pairs, classes


@reports_errors
def run_train(args: argparse.Namespace) -> None:
    classes = _classes(args)
    settings = settings_from(
        TrainSettings, args, flips=not args.no_flips, encoder_weights=_encoder_weights(args)
    )
    bands, stretch = band_options(args)
    if args.resume:
        data = read_config(args.name)["data"]
        train_pairs = [(Path(i), Path(lab)) for i, lab in data["train"]]
        val_pairs = [(Path(i), Path(lab)) for i, lab in data["val"]]
        choice = BandChoice()  # the run's own, from its config
    else:
        train_pairs, val_pairs, classes = _training_data(args, classes)
        if args.strict:
            check_label_colors(train_pairs + val_pairs, classes)
        choice = training_bands([i for i, _ in train_pairs + val_pairs], bands, stretch)
        print(f"network input: {choice.describe()}")
    start = time.perf_counter()
    config = train(
        train_pairs,
        val_pairs,
        classes,
        args.name,
        settings,
        resume=args.resume,
        force=args.force,
        log=print,
        bands=choice,
    )
    minutes = (time.perf_counter() - start) / 60
    best = config["best_val_mean_iou"]
    print(
        f"{config['epochs_done']} epoch(s) in {minutes:.1f} min; model of epoch "
        f"{config['best_epoch']}"
        + (f" (validation mean IoU {best:.3f})" if best is not None else "")
        + f" in {Path(args.name) / 'model.keras'}"
    )


def _encoder_weights(args: argparse.Namespace) -> str | None:
    if args.resume:
        return None  # from the run's config
    if args.encoder_weights is None:
        raise DltoolsError(
            "--encoder-weights is required: a local MobileNetV2 weights file "
            "(..._no_top.h5) or 'none' to train from scratch"
        )
    return None if args.encoder_weights.lower() == "none" else args.encoder_weights


# --- infer / infer-crf ---------------------------------------------------------------------


def _infer_parser(parser: argparse.ArgumentParser, crf: bool) -> argparse.ArgumentParser:
    parser.description = (
        "Segment images of any size with a trained run: overlapping windows whose class "
        "probabilities are blended (no seams). For each image writes <name>_TAG_label "
        "(class + 1, 0 = nodata) and <name>_TAG_overlay (class colours over the image): "
        "COGs with a QGIS .qml style on the input's grid (CRS, transform) for TIFF inputs, "
        "PNGs plus <name>_ares_TAG.mat otherwise. "
        + (
            "TAG is fcn_crf: the probabilities are refined by the dense CRF of step 2 at "
            "--crf-scale. An image larger than --block is done in windows with a margin of "
            "context, so rasters larger than memory work."
            if crf
            else "TAG is fcn. Rasters are read and written block by block, so rasters larger "
            "than memory work."
        )
    )
    parser.add_argument(
        "--name",
        required=True,
        nargs="+",
        metavar="RUN",
        help="trained run folder; several (of the same classes and input bands, e.g. trained "
        "with other --seed values): an ensemble that averages their class probabilities, "
        "steadier on unseen images, one network's time each",
    )
    parser.add_argument(
        "--samples-dir", required=True, metavar="D", help="an image, or a folder of images"
    )
    parser.add_argument("--output-dir", required=True, metavar="O", help="folder for the outputs")
    for flag, help in (  # default: the Tiling's field of the flag's name
        ("--window", "window side in pixels, a multiple of 32"),
        ("--overlap", "pixels shared by neighbouring windows, a multiple of 32"),
        ("--batch-size", "windows per batch"),
    ):
        default = getattr(TILING, flag[2:].replace("-", "_"))
        parser.add_argument(flag, type=int, default=default, help=f"{help} (default: %(default)s)")
    parser.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=TILING.tta,
        help="average the predictions of the four flips of each window: about 4x the network's "
        f"time, better labels on unseen images (default: {'on' if TILING.tta else 'off'})",
    )
    parts = (
        "windows of BLOCK x BLOCK pixels, each refined with a margin of context (labels near "
        "a window's edge may differ slightly from a run in one piece)"
        if crf
        else "parts of about BLOCK x BLOCK pixels"
    )
    parser.add_argument(
        "--block",
        type=int,
        default=CRF_BLOCK if crf else TILING.max_width,
        help=f"images larger than this are made in {parts}, which bound the memory; with "
        "--dask each is a unit of work, and --resume keeps those an interrupted run finished "
        "(default: %(default)s)",
    )
    parser.add_argument("--no-overlay", action="store_true", help="do not write overlays")
    tag = "fcn_crf" if crf else "fcn"
    add_uncertainty(
        parser,
        f"<name>_{tag}",
        "CRF posteriors" if crf else "blended class probabilities",
        f"uncertainty_ranking_{tag}.csv",
    )
    add_bands(parser, training=False)
    add_folder_options(parser, dask="one image each, and each part of an image larger than --block")
    if crf:
        group = parser.add_argument_group("CRF scale and processes")
        group.add_argument(
            "--crf-scale",
            type=float,
            default=CRF_SCALE,
            help="working scale of the CRF, in (0, 1] (default: %(default)s)",
        )
        group.add_argument(
            "--workers",
            type=int,
            help="CRF processes (default: all cores; with --dask, 1 per worker)",
        )
        add_crf_options(parser, CRF_DEFAULTS, evidence="the network's probabilities")
    add_vector_options(parser)
    add_force(parser)
    parser.set_defaults(crf=crf)  # which of infer / infer-crf run_infer does
    return parser


@reports_errors
def run_infer(args: argparse.Namespace) -> None:
    crf = args.crf
    tiling = Tiling(args.window, args.overlap, args.batch_size, args.tta, args.block)
    images = infer_images(args.samples_dir)
    tag = "fcn_crf" if crf else "fcn"
    infer = infer_file  # with infer-crf, infer_file_crf with the CRF's settings
    if crf:
        params = crf_params(args)
        workers = args.workers if args.dask is None else args.workers or 1  # no pools in workers
        infer = functools.partial(
            infer_file_crf, params=params, scale=args.crf_scale, workers=workers
        )
    bands, _ = band_options(args)
    run_bands = ensemble_bands(args.name)
    run = Cached(load_runs, (tuple(map(str, args.name)),))  # once per process (Dask worker)
    measure = args.uncertainty or "margin"
    outputs, choices, vectors = {}, {}, {}

    def plan(path: Path) -> list[Path]:
        choices.update(inference_bands(run_bands, [path], bands, args.name[0]))
        outputs[path] = output_paths(
            path, args.output_dir, tag, not args.no_overlay, args.uncertainty is not None
        )
        if args.vector:
            vectors[path] = vector_path(outputs[path].label)
        return [*outputs[path].files(), *([vectors[path]] if args.vector else [])]

    def work(path: Path, executor: Executor) -> str:
        start = time.perf_counter()
        out = outputs[path]
        progress = show_progress if args.dask is None or executor.remote else quiet
        counts = infer(
            run,
            path,
            out,
            tiling=tiling,
            bands=choices[path],
            uncertainty=measure,
            executor=executor,
            resume=args.skip_existing,
            progress=progress,
        )
        labelled = max(int(counts[1:].sum()), 1)
        shares = ", ".join(
            f"{name} {100 * n / labelled:.0f}%"
            for name, n in zip(run().classes.names, counts[1:], strict=True)
        )
        if args.vector:
            write_vector(out.label, vectors[path], run().classes.names, vector_params(args))
        return f"{out.label} ({time.perf_counter() - start:.1f} s): {shares}"

    def in_parts(path: Path) -> bool:  # its parts are the units of work
        profile = read_profile(path)
        shape = (profile["height"], profile["width"])
        if crf:
            return len(crf_windows(shape, params, args.crf_scale, tiling)) > 1
        return len(infer_parts(shape, tiling)) > 1

    if args.uncertainty is None:
        return run_each(images, plan, work, args, run, in_parts)

    def next_csvs() -> dict[Path, Path]:
        return {image: out.next_csv for image, out in outputs.items()}

    replace = args.force or args.skip_existing
    with ranking_images(args.output_dir, replace, next_csvs, f"uncertainty_ranking_{tag}.csv"):
        run_each(images, plan, work, args, run, in_parts)


# --- dispatch ------------------------------------------------------------------------------

COMMANDS = {
    "make-labels": (_make_labels_parser, run_make_labels, "colour and index label images"),
    "train": (_train_parser, run_train, "train the network"),
    "infer": (lambda p: _infer_parser(p, False), run_infer, "segment images of any size"),
    "infer-crf": (lambda p: _infer_parser(p, True), run_infer, "segment, then refine by CRF"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dltools fcn",
        description="Step 8: fully convolutional segmentation (dltools fcn COMMAND --help).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (build, run, summary) in COMMANDS.items():
        build(commands.add_parser(name, help=summary)).set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


def script_main(command: str, argv: list[str] | None = None) -> int:
    """``semseg_fullyconv/<command>.py``: one command as its own script."""
    build, run, _ = COMMANDS[command]
    return run(build(argparse.ArgumentParser()).parse_args(argv))
