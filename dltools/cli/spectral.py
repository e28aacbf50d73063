"""``dltools spectral <verb>`` / ``spectral/*.py``: spectral models for hyperspectral cubes.

Verbs: ``train-ae``, ``encode``, ``decode``, ``reconstruct`` (per-pixel autoencoders) and
``train-classifier`` (also ``--cv K``), ``predict`` (a 1-D CNN classifier, on cubes or on
tables of spectra). TensorFlow is imported only when a verb runs, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from dltools.cli._common import (
    DefaultsHelpFormatter,
    add_dask,
    add_force,
    add_seed,
    dask_executor,
    reports_errors,
    show_progress,
)
from dltools.errors import DltoolsError
from dltools.io.outputs import ensure_new
from dltools.spectral.options import (
    CLASSIFIER_TRAINING,
    DECAYS,
    HEADS,
    LOSSES,
    OPTIMIZERS,
    PREDICT_BATCH,
    SCALINGS,
    ClassifierOptions,
    ConvOptions,
    MLPOptions,
    Training,
)

MLP, CONV, CLASSIFIER, TRAINING = MLPOptions(), ConvOptions(), ClassifierOptions(), Training()
AUGMENTATION = ("shift", "flip", "gain", "offset", "noise")
CLASSIFIER_ONLY = {"holdout", "patience", "balance", "tensorboard", *AUGMENTATION}
TRAINING_KEYS = {f.name for f in dataclasses.fields(Training)}
AE_OPTIONS = {"kind", "scaling"} | set(vars(MLP)) | set(vars(CONV)) | TRAINING_KEYS
AE_OPTIONS -= CLASSIFIER_ONLY
CLASSIFIER_OPTIONS = {"scaling"} | set(vars(CLASSIFIER)) | TRAINING_KEYS - {"loss"}


def _add_cube(parser: argparse.ArgumentParser, what: str = "cube", table: bool = False) -> None:
    """``-i CUBE`` (and ``--variable``); with ``table``, or ``--table FILE --label-column``."""
    source = parser.add_mutually_exclusive_group(required=True) if table else parser
    source.add_argument(
        "-i",
        "--input",
        required=not table,
        metavar="CUBE",
        help=f"the {what}: a multi-band GeoTIFF (or any GDAL raster), a .npy file "
        "(rows x cols x bands) or a .mat file",
    )
    if table:
        source.add_argument(
            "--table",
            metavar="FILE",
            help="instead of a cube, a table of spectra, one per row: a .csv file (a first "
            "row that holds anything but numbers is its header) or a 2-D .npy array; every "
            "column but --label-column is a band",
        )
        parser.add_argument(
            "--label-column",
            metavar="NAME|INDEX",
            help="the column of --table holding class labels: a header name or a 0-based "
            "index (-1: the last); labels are whole numbers (the class values; 0 and below: "
            "unlabelled) or class names",
        )
    parser.add_argument(
        "--variable", help="the variable of a .mat file (default: its only 3-D array)"
    )


def _add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m", "--model", required=True, metavar="DIR", help="a model folder written by training"
    )
    parser.add_argument(
        "-o", "--out-dir", metavar="DIR", help="write outputs here (default: beside the input)"
    )
    parser.add_argument(
        "--block",
        type=int,
        default=512,
        help="pixels per side of the windows read at once",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=PREDICT_BATCH,
        help="spectra per network call; with --block, this bounds the memory used",
    )
    add_dask(parser, "each window of --block pixels; every worker loads the model once")
    add_force(parser)


def _add_training(parser: argparse.ArgumentParser, t: Training = TRAINING) -> None:
    """The optimiser, schedule and run options, with the defaults of ``t``."""
    group = parser.add_argument_group("training (also settable in --config)")
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=t.optimizer, help="optimiser")
    group.add_argument(
        "--learning-rate", type=float, default=t.learning_rate, help="(initial) learning rate"
    )
    group.add_argument("--momentum", type=float, default=t.momentum, help="SGD momentum")
    group.add_argument(
        "--decay",
        choices=DECAYS,
        default=t.decay,
        help="learning-rate decay: exponential (x --decay-rate every --decay-steps batches) "
        "or piecewise (the rate becomes --rates[i] after batch --boundaries[i])",
    )
    group.add_argument(
        "--decay-steps", type=int, default=t.decay_steps, help="batches per exponential decay"
    )
    group.add_argument(
        "--decay-rate", type=float, default=t.decay_rate, help="factor per --decay-steps"
    )
    group.add_argument(
        "--boundaries",
        type=int,
        nargs="+",
        default=list(t.boundaries),
        metavar="BATCH",
        help="piecewise decay: batch numbers where the rate changes",
    )
    group.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=list(t.rates),
        metavar="RATE",
        help="piecewise decay: the rate after each boundary",
    )
    group.add_argument(
        "--weight-decay",
        type=float,
        default=t.weight_decay,
        help="decoupled weight decay (0: none)",
    )
    group.add_argument(
        "--batch-size", type=int, default=t.batch_size, help="pixels per training batch"
    )
    group.add_argument("--epochs", type=int, default=t.epochs, help="total number of epochs")
    group.add_argument(
        "--save-epochs",
        type=int,
        nargs="+",
        default=list(t.save_epochs),
        metavar="EPOCH",
        help="also save the model (with its optimiser state) after these epochs, as "
        "DIR/epoch_NNNN.keras, to resume from or compare",
    )
    group.add_argument(
        "--resume-epoch",
        type=int,
        metavar="EPOCH",
        help="continue the training in -o DIR from its checkpoint after EPOCH epochs, up to "
        "--epochs; every other option then comes from DIR/config.json",
    )
    group.add_argument(
        "--block", type=int, default=t.block, help="pixels per side of the windows read from disk"
    )
    group.add_argument(
        "--scaling",
        choices=SCALINGS,
        default="minmax",
        help="pre-processing, saved with the model: minmax = per spectrum "
        "(x - (min(x) - 0.001)) / max(x) (deephyp); standard = per band (x - mean) / std over "
        "the cube; none",
    )
    group.add_argument(
        "--config",
        metavar="JSON",
        help="options as JSON: {option: value} with the names of this help (--learning-rate "
        "-> learning_rate), or a model's config.json; options given here win",
    )
    add_seed(parser, t.seed)
    add_force(parser)


def _add_train_ae(verbs) -> None:
    ae = verbs.add_parser(
        "train-ae",
        help="train an autoencoder on every pixel of a cube",
        description="Train an MLP or 1-D convolutional autoencoder on every valid pixel of a "
        "cube, streaming windows from disk. Writes DIR/config.json, DIR/model.keras, "
        "DIR/history.csv and any --save-epochs checkpoints.",
        formatter_class=DefaultsHelpFormatter,
    )
    _add_cube(ae)
    ae.add_argument("-o", "--out", required=True, metavar="DIR", help="the model folder")
    ae.add_argument(
        "--loss",
        choices=LOSSES,
        default=TRAINING.loss,
        help="sse: sum of squared errors; sa: spectral angle; csa: 1 - cos(spectral angle); "
        "sid: spectral information divergence (sa, csa and sid ignore brightness)",
    )
    arch = ae.add_argument_group("architecture (also settable in --config)")
    arch.add_argument(
        "--model", dest="kind", choices=("mlp", "conv"), default="mlp", help="autoencoder type"
    )
    arch.add_argument(
        "--encoder-size",
        type=int,
        nargs="+",
        default=list(MLP.encoder_size),
        help="mlp: widths of the encoder layers, the last is the latent size",
    )
    arch.add_argument("--activation", default=MLP.activation, help="hidden-layer activation")
    arch.add_argument(
        "--latent-activation", default=MLP.latent_activation, help="latent-layer activation"
    )
    arch.add_argument(
        "--output-activation", default=MLP.output_activation, help="output-layer activation"
    )
    arch.add_argument(
        "--tied-weights", action="store_true", help="mlp: decoder kernels = encoder's, transposed"
    )
    arch.add_argument(
        "--skip-connections",
        action="store_true",
        help="mlp: add encoder activations to the decoder layers of the same width (latent "
        "vectors alone can then not be decoded)",
    )
    arch.add_argument(
        "--filters", type=int, nargs="+", default=list(CONV.filters), help="conv: per layer"
    )
    arch.add_argument(
        "--kernel-sizes",
        type=int,
        nargs="+",
        default=list(CONV.kernel_sizes),
        help="conv: kernel length (bands) per layer",
    )
    arch.add_argument(
        "--strides", type=int, nargs="+", default=list(CONV.strides), help="conv: per layer"
    )
    arch.add_argument(
        "--latent-size", type=int, default=CONV.latent_size, help="conv: latent dimensions"
    )
    _add_training(ae)


def _add_train_classifier(verbs) -> None:
    clf = verbs.add_parser(
        "train-classifier",
        help="train a 1-D CNN on labelled spectra (or cross-validate it with --cv)",
        description="Train a 1-D CNN on labelled spectra: the pixels of a cube that a label "
        "raster marks with a class (values > 0; 0 and below are background), or the rows of "
        "a --table. A --holdout fraction of them is kept for validation: training stops when "
        "validation accuracy has not improved for --patience epochs, keeping the best "
        "epoch's weights. Every epoch oversamples each class to the size of the largest and "
        "augments each copy (shift, gain, offset, noise, optionally flip). Writes "
        "DIR/config.json, DIR/model.keras, DIR/history.csv and any --save-epochs checkpoints; "
        "with --cv K, only DIR/cv.json. The defaults suit small sets (a few hundred spectra).",
        formatter_class=DefaultsHelpFormatter,
    )
    _add_cube(clf, table=True)
    clf.add_argument(
        "-r",
        "--label-raster",
        metavar="RASTER",
        help="with -i: one-band raster (GeoTIFF, PNG, .npy, .mat) on the cube's grid: value k "
        "= class k",
    )
    clf.add_argument("--label-variable", help="the variable of a .mat label raster")
    clf.add_argument("-l", "--labels", help="labels.txt: the name of class k on line k")
    clf.add_argument("-c", "--colors", help="colors.txt: the colour of class k on line k")
    clf.add_argument("-o", "--out", required=True, metavar="DIR", help="the model folder")
    clf.add_argument(
        "--cv",
        type=int,
        metavar="K",
        help="instead of training one model, report stratified K-fold accuracy of the CNN "
        "(trained on K-1 folds as without --cv) and, on the same folds, of 1-nearest-"
        "neighbour classifiers on the pre-processed spectra and on their FFT magnitudes; "
        "writes DIR/cv.json",
    )
    arch = clf.add_argument_group("architecture (also settable in --config)")
    c = CLASSIFIER
    arch.add_argument(
        "--conv-filters",
        type=int,
        nargs="*",
        default=list(c.conv_filters),
        help="filters of each conv block (none: dense layers only)",
    )
    arch.add_argument(
        "--kernel-sizes",
        type=int,
        nargs="*",
        default=list(c.kernel_sizes),
        help="kernel length (bands) of each conv block",
    )
    arch.add_argument(
        "--pool-size", type=int, default=c.pool_size, help="max-pooling after each conv block"
    )
    arch.add_argument(
        "--head",
        choices=HEADS,
        default=c.head,
        help="after the conv blocks: max or average over the bands of each filter's outputs "
        "(shift-tolerant: a feature counts wherever it lies), or flatten (keeps positions)",
    )
    arch.add_argument(
        "--dense-units",
        type=int,
        nargs="*",
        default=list(c.dense_units),
        help="units of each fully connected block",
    )
    arch.add_argument(
        "--no-batch-norm",
        dest="batch_norm",
        action="store_false",
        help="no batch normalisation after conv and dense layers",
    )
    arch.add_argument(
        "--dropout", type=float, default=c.dropout, help="dropout after each dense block"
    )
    t = CLASSIFIER_TRAINING
    clf.add_argument(
        "--holdout", type=float, default=t.holdout, help="fraction kept for validation"
    )
    clf.add_argument("--patience", type=int, default=t.patience, help="early stopping (0: never)")
    clf.add_argument(
        "--no-balance",
        dest="balance",
        action="store_false",
        help="do not oversample classes to the size of the largest (every spectrum once per epoch)",
    )
    clf.add_argument(
        "--tensorboard", action="store_true", help="write TensorBoard logs to DIR/logs"
    )
    aug = clf.add_argument_group(
        "augmentation of training spectra, in pre-processed units (0: off; --config too)"
    )
    aug.add_argument(
        "--shift", type=int, default=t.shift, help="move each spectrum by up to this many bands"
    )
    aug.add_argument(
        "--flip",
        action="store_true",
        help="reverse half the spectra: only where the instrument's dispersion direction is "
        "unknown",
    )
    aug.add_argument(
        "--gain", type=float, default=t.gain, help="multiply by a factor in [1 - GAIN, 1 + GAIN]"
    )
    aug.add_argument(
        "--offset", type=float, default=t.offset, help="add a constant in [-OFFSET, OFFSET]"
    )
    aug.add_argument(
        "--noise", type=float, default=t.noise, help="add white noise of this standard deviation"
    )
    _add_training(clf, t)


def _add_apply_verbs(verbs) -> None:
    for verb, what, text in (
        ("encode", "cube", "Write the latent image: INPUT_latent.tif (+ INPUT_latent.png)."),
        ("decode", "latent image", "Decode a latent image into spectra: INPUT_decoded.tif."),
        (
            "reconstruct",
            "cube",
            "Encode and decode every pixel: INPUT_reconstruction.tif (+ INPUT_spectra.png, "
            "random spectra against their reconstructions); prints the mean SSE and angle.",
        ),
    ):
        sub = verbs.add_parser(
            verb,
            help=text.split(":")[0].lower(),
            description=text,
            formatter_class=DefaultsHelpFormatter,
        )
        _add_cube(sub, what)
        _add_model(sub)
        if verb != "decode":
            sub.add_argument(
                "--no-figure", dest="figure", action="store_false", help="skip the PNG figure"
            )
    verbs.choices["reconstruct"].add_argument(
        "--pixels", type=int, default=6, help="random pixels drawn in the figure"
    )
    predict = verbs.add_parser(
        "predict",
        help="classify every pixel of a cube, or every row of a table of spectra",
        description="Classify every pixel: INPUT_classes.tif (class values, georeferenced "
        "like the input; 0 = unknown or nodata), INPUT_classes.png (the same values), "
        "INPUT_classes_figure.png (in class colours; not for strip-shaped cubes), "
        "INPUT_scores.tif (class probabilities) and, with --features, "
        "INPUT_features_LAYER.tif. With --table: TABLE_predictions.csv (per row: class "
        "value, name and probabilities); with --label-column, also the true labels, and the "
        "accuracy is printed.",
        formatter_class=DefaultsHelpFormatter,
    )
    _add_cube(predict, table=True)
    _add_model(predict)
    predict.add_argument(
        "--unknown-below",
        type=float,
        default=0.0,
        metavar="P",
        help="label pixels whose top class probability is below P as unknown (0)",
    )
    predict.add_argument(
        "--features",
        metavar="LAYER",
        help="also write the outputs of this layer (e.g. head, dense_0_relu, conv_1_relu; "
        "a wrong name lists them all)",
    )
    predict.add_argument(
        "--no-scores", dest="scores", action="store_false", help="do not write INPUT_scores.tif"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dltools spectral",
        description="Per-pixel spectral models for multispectral and hyperspectral cubes "
        "(rows x cols x bands): autoencoders that learn a few features per pixel, and a 1-D "
        "CNN that classifies pixels by their spectra. Models are saved as folders "
        "(config.json + model.keras) that reload on their own.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    parser.verb_parsers = verbs.choices  # {verb: its parser}, for --config defaults
    _add_train_ae(verbs)
    _add_apply_verbs(verbs)
    _add_train_classifier(verbs)
    return parser


def _config_defaults(verb: str, path: str) -> dict:
    """The options of a ``--config`` JSON file, as defaults for ``verb``."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DltoolsError(f"{path}: cannot read this JSON file ({err})") from err
    if not isinstance(saved, dict):
        raise DltoolsError(f"{path}: expected a JSON object of options")
    known = AE_OPTIONS if verb == "train-ae" else CLASSIFIER_OPTIONS
    if "architecture" in saved and "training" in saved:  # a model's config.json
        flat = {**saved["architecture"], **saved["training"]}
        flat["scaling"] = saved.get("scaling", {}).get("method", "minmax")
        if saved.get("kind") in {"mlp", "conv"}:
            flat["kind"] = saved["kind"]
        return {k: v for k, v in flat.items() if k in known}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise DltoolsError(f"{path}: unknown option(s) {unknown}; known: {sorted(known)}")
    return saved


def _parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; options from ``--config`` become defaults that the command line beats."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        parser.verb_parsers[args.verb].set_defaults(**_config_defaults(args.verb, args.config))
        args = parser.parse_args(argv)
    return args


def _training(args: argparse.Namespace) -> Training:
    return Training.from_dict({k: getattr(args, k) for k in TRAINING_KEYS if hasattr(args, k)})


def _source(args: argparse.Namespace):
    """The :class:`~dltools.pipeline.spectral.SpectraSource` of a training verb."""
    from dltools.pipeline.spectral import SpectraSource

    return SpectraSource(
        args.input,
        args.variable,
        getattr(args, "label_raster", None),
        getattr(args, "label_variable", None),
        getattr(args, "table", None),
        getattr(args, "label_column", None),
        getattr(args, "labels", None),
        args.block,
    )


def _train(args: argparse.Namespace) -> None:
    from dltools.pipeline import spectral

    classifier = args.verb == "train-classifier"
    options = vars(CLASSIFIER) if classifier else vars(MLP if args.kind == "mlp" else CONV)
    model = spectral.train(
        args.out,
        _source(args),
        _training(args),
        "classifier" if classifier else args.kind,
        {k: getattr(args, k) for k in options},
        args.scaling,
        getattr(args, "colors", None),
        args.resume_epoch,
        args.force,
    )
    config = model.config
    print(f"trained {config['kind']} for {config['epochs_done']} epoch(s): {args.out}")
    if "validation_accuracy" in config:
        print(
            f"best validation accuracy {config['validation_accuracy']:.4f} "
            f"after epoch {config['best_epoch']} (kept)"
        )


def _cross_validate(args: argparse.Namespace) -> None:
    from dltools.pipeline import spectral

    if args.resume_epoch is not None or args.save_epochs:
        raise DltoolsError(
            "--cv trains its own models: it takes no --resume-epoch or --save-epochs"
        )
    architecture = {k: getattr(args, k) for k in vars(CLASSIFIER)}
    cv, path = spectral.cross_validate(
        args.out, _source(args), args.cv, _training(args), architecture, args.scaling, args.force
    )
    print(f"{args.cv}-fold cross-validation on {len(cv.values)} spectra")
    print(cv.table())
    print(f"wrote {path}")


def _apply(args: argparse.Namespace) -> None:
    from dltools.pipeline import spectral
    from dltools.spectral.cube import open_cube
    from dltools.spectral.folder import load_model

    cube = open_cube(args.input, args.variable)
    paths = spectral.apply_outputs(args.verb, cube, args.out_dir, getattr(args, "figure", False))
    ensure_new(paths, args.force)
    model = load_model(args.model)
    with dask_executor(args) as executor:
        errors = spectral.apply(
            args.verb,
            model,
            cube,
            paths,
            args.block,
            args.batch_size,
            getattr(args, "pixels", 0),
            show_progress,
            executor,
        )
    if errors is not None:
        print(f"mean SSE {errors['sse']:.5g}, mean spectral angle {errors['sa']:.5g} rad")
    for path in paths:
        print(f"wrote {path}")


def _print_classes(classes: dict, counts: dict[int, int], pixels: bool) -> None:
    """One line per class of a model's ``classes`` (and unknown, 0): its count in ``counts``
    of pixels (with their share) or of spectra."""
    total = max(sum(counts.values()), 1)
    for value, name in zip([0, *classes["values"]], ["unknown", *classes["names"]], strict=True):
        count = counts[value]
        line = f"{count:12d} px  {100 * count / total:6.2f}%" if pixels else f"{count:8d} spectra"
        print(f"{value:5d} {name:<24} {line}")


def _predict(args: argparse.Namespace) -> None:
    from dltools.pipeline import spectral
    from dltools.spectral.cube import open_cube
    from dltools.spectral.folder import load_model

    cube = open_cube(args.input, args.variable)
    outputs = spectral.predict_outputs(cube, args.out_dir, args.scores, args.features)
    ensure_new(outputs.files, args.force)
    model = load_model(args.model)
    with dask_executor(args) as executor:
        counts = spectral.predict(
            model,
            cube,
            outputs,
            args.features,
            args.unknown_below,
            args.block,
            args.batch_size,
            show_progress,
            executor,
        )
    _print_classes(model.config["classes"], counts, pixels=True)
    for path in outputs.files:
        print(f"wrote {path}")


def _predict_table(args: argparse.Namespace) -> None:
    from dltools.pipeline import spectral
    from dltools.spectral.folder import load_model

    if args.features:
        raise DltoolsError("--features writes a raster: it needs a cube (-i), not a --table")
    if args.dask:
        raise DltoolsError("--dask runs the windows of a cube (-i): a --table runs here")
    path = spectral.table_output(args.table, args.out_dir)
    ensure_new([path], args.force)
    model = load_model(args.model)
    found = spectral.predict_table(
        model, args.table, path, args.label_column, args.unknown_below, args.batch_size
    )
    _print_classes(model.config["classes"], found.counts, pixels=False)
    if found.score is not None:
        print(
            f"accuracy {found.score.accuracy:.4f}, macro F1 {found.score.macro_f1:.4f} on "
            f"{found.labelled} labelled spectra"
        )
    print(f"wrote {path}")


@reports_errors
def run(argv: list[str]) -> None:
    args = _parse(argv)
    if args.verb == "train-classifier" and args.cv is not None:
        _cross_validate(args)
    elif args.verb in {"train-ae", "train-classifier"}:
        _train(args)
    elif args.verb == "predict" and args.table is not None:
        _predict_table(args)
    elif args.verb == "predict":
        _predict(args)
    else:
        _apply(args)


def main(argv: list[str] | None = None) -> int:
    """``dltools spectral VERB ...``; return the exit status."""
    return run(sys.argv[1:] if argv is None else list(argv))


def _verb_main(verb: str):
    def verb_main(argv: list[str] | None = None) -> int:
        return main([verb, *(sys.argv[1:] if argv is None else argv)])

    verb_main.__doc__ = f"``dltools spectral {verb} ...`` (the script spectral/*.py)."
    return verb_main


train_autoencoder = _verb_main("train-ae")
encode = _verb_main("encode")
decode = _verb_main("decode")
reconstruct = _verb_main("reconstruct")
train_classifier = _verb_main("train-classifier")
predict = _verb_main("predict")
