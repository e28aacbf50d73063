"""``dltools spectral <verb>`` / ``spectral/*.py``: spectral models for hyperspectral cubes.

Verbs: ``train-ae``, ``encode``, ``decode``, ``reconstruct`` (per-pixel autoencoders) and
``train-classifier``, ``predict`` (a 1-D CNN classifier). TensorFlow is imported only when a
verb runs, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from dltools.cli._common import add_force, add_seed, reports_errors
from dltools.errors import DltoolsError
from dltools.io.outputs import ensure_new
from dltools.spectral.options import (
    DECAYS,
    LOSSES,
    MAX_FIGURE_ASPECT,
    OPTIMIZERS,
    PREDICT_BATCH,
    SCALINGS,
    ClassifierOptions,
    ConvOptions,
    MLPOptions,
    Training,
)

MLP, CONV, CLASSIFIER, TRAINING = MLPOptions(), ConvOptions(), ClassifierOptions(), Training()
CLASSIFIER_ONLY = {"holdout", "patience", "balance", "tensorboard"}
TRAINING_KEYS = {f.name for f in dataclasses.fields(Training)}
AE_OPTIONS = {"kind", "scaling"} | set(vars(MLP)) | set(vars(CONV)) | TRAINING_KEYS
AE_OPTIONS -= CLASSIFIER_ONLY
CLASSIFIER_OPTIONS = {"scaling"} | set(vars(CLASSIFIER)) | TRAINING_KEYS - {"loss"}


def _add_cube(parser: argparse.ArgumentParser, what: str = "cube") -> None:
    parser.add_argument(
        "-i",
        "--input",
        required=True,
        metavar="CUBE",
        help=f"the {what}: a multi-band GeoTIFF (or any GDAL raster), a .npy file "
        "(rows x cols x bands) or a .mat file",
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
        help="pixels per side of the windows read at once (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=PREDICT_BATCH,
        help="spectra per network call; with --block, this bounds the memory used "
        "(default: %(default)s)",
    )
    add_force(parser)


def _add_training(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training (also settable in --config)")
    t = TRAINING
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
        help="train a 1-D CNN on the labelled pixels of a cube",
        description="Train a 1-D CNN on the pixels of a cube that a label raster marks with a "
        "class (values > 0; 0 and below are background). A --holdout fraction of them is kept "
        "for validation: training stops when validation accuracy has not improved for "
        "--patience epochs, keeping the best epoch's weights. Writes DIR/config.json, "
        "DIR/model.keras, DIR/history.csv and any --save-epochs checkpoints.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_cube(clf)
    clf.add_argument(
        "-r",
        "--label-raster",
        required=True,
        metavar="RASTER",
        help="one-band raster (GeoTIFF, PNG, .npy, .mat) on the cube's grid: value k = class k",
    )
    clf.add_argument("--label-variable", help="the variable of a .mat label raster")
    clf.add_argument("-l", "--labels", help="labels.txt: the name of class k on line k")
    clf.add_argument("-c", "--colors", help="colors.txt: the colour of class k on line k")
    clf.add_argument("-o", "--out", required=True, metavar="DIR", help="the model folder")
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
    clf.add_argument(
        "--holdout", type=float, default=TRAINING.holdout, help="fraction kept for validation"
    )
    clf.add_argument(
        "--patience", type=int, default=TRAINING.patience, help="early stopping (0: never)"
    )
    clf.add_argument(
        "--no-balance",
        dest="balance",
        action="store_false",
        help="do not weight classes inversely to their pixel counts",
    )
    clf.add_argument(
        "--tensorboard", action="store_true", help="write TensorBoard logs to DIR/logs"
    )
    _add_training(clf)


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
        sub = verbs.add_parser(verb, help=text.split(":")[0].lower(), description=text)
        _add_cube(sub, what)
        _add_model(sub)
        if verb != "decode":
            sub.add_argument(
                "--no-figure", dest="figure", action="store_false", help="skip the PNG figure"
            )
    verbs.choices["reconstruct"].add_argument(
        "--pixels", type=int, default=6, help="random pixels drawn in the figure (default: 6)"
    )
    predict = verbs.add_parser(
        "predict",
        help="classify every pixel of a cube",
        description="Classify every pixel: INPUT_classes.tif (class values, georeferenced "
        "like the input; 0 = unknown or nodata), INPUT_classes.png (the same values), "
        "INPUT_classes_figure.png (in class colours), INPUT_scores.tif (class probabilities) "
        "and, with --features, INPUT_features_LAYER.tif.",
    )
    _add_cube(predict)
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
        help="also write the outputs of this layer (e.g. flatten, dense_0_relu, conv_1_relu; "
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


def _train_outputs(folder: Path, args: argparse.Namespace) -> None:
    """Refuse to replace a model folder's files unless --force (which clears old checkpoints)."""
    from dltools.spectral.folder import CONFIG, HISTORY, MODEL, checkpoint_path

    later = [checkpoint_path(folder, e) for e in args.save_epochs if e > (args.resume_epoch or 0)]
    if args.resume_epoch is not None:
        ensure_new(later, args.force)
        return
    old = sorted(folder.glob("epoch_*.keras"))
    ensure_new([folder / CONFIG, folder / MODEL, folder / HISTORY, *old, *later], args.force)
    for path in old:
        path.unlink()


def _train(args: argparse.Namespace, labels_needed: bool) -> None:
    from dltools.io.labels import read_colors, read_labels
    from dltools.spectral import training
    from dltools.spectral.cube import open_cube, open_labels

    folder = Path(args.out)
    cube = open_cube(args.input, args.variable)
    labels = open_labels(args.label_raster, cube, args.label_variable) if labels_needed else None
    _train_outputs(folder, args)
    if args.resume_epoch is not None:
        model = training.resume_training(
            folder, cube, args.resume_epoch, args.epochs, args.save_epochs, labels
        )
    elif labels is None:
        keys = vars(MLP if args.kind == "mlp" else CONV)
        architecture = {k: getattr(args, k) for k in keys}
        model = training.train_autoencoder(
            cube, folder, args.kind, architecture, _training(args), args.scaling
        )
    else:
        names = read_labels(args.labels) if args.labels else None
        colors = read_colors(args.colors) if args.colors else None
        model = training.train_classifier(
            cube,
            labels,
            folder,
            {k: getattr(args, k) for k in vars(CLASSIFIER)},
            _training(args),
            args.scaling,
            names,
            colors,
        )
    config = model.config
    print(f"trained {config['kind']} for {config['epochs_done']} epoch(s): {folder}")
    if "validation_accuracy" in config:
        print(
            f"best validation accuracy {config['validation_accuracy']:.4f} "
            f"after epoch {config['best_epoch']} (kept)"
        )


def _progress(cube, what: str):
    from tqdm import tqdm

    return tqdm(total=cube.shape[0] * cube.shape[1], unit="px", unit_scale=True, desc=what)


def _outputs(args: argparse.Namespace, *suffixes: str) -> list[Path]:
    source = Path(args.input)
    folder = Path(args.out_dir) if args.out_dir else source.parent
    return [folder / f"{source.stem}{suffix}" for suffix in suffixes]


def _is_picture(shape: tuple[int, ...]) -> bool:
    """Whether a ``(rows, cols, ...)`` raster can be drawn as a picture.

    A figure keeps the raster's aspect ratio, so a strip such as a 175 x 1 table of spectra
    stored as a cube would become a figure 1,200 inches tall (over 10 GB of pixels).
    """
    return max(shape[:2]) <= MAX_FIGURE_ASPECT * min(shape[:2])


def _no_figure_note(cube) -> None:
    rows, cols = cube.shape[:2]
    print(
        f"no figure: a {rows} x {cols} raster is more than {MAX_FIGURE_ASPECT} times longer "
        "than wide (for spectra without a grid, see --table)"
    )


def _apply(args: argparse.Namespace) -> None:
    from dltools.figures import latent_figure, save_figure, spectra_figure
    from dltools.spectral import inference
    from dltools.spectral.cube import open_cube, read_overview
    from dltools.spectral.folder import load_model

    suffixes = {
        "encode": ("_latent.tif", "_latent.png"),
        "decode": ("_decoded.tif",),
        "reconstruct": ("_reconstruction.tif", "_spectra.png"),
    }[args.verb]
    paths = _outputs(args, *suffixes)
    cube = open_cube(args.input, args.variable)
    figure = getattr(args, "figure", False)  # decode draws none
    if figure and args.verb == "encode" and not _is_picture(cube.shape):
        _no_figure_note(cube)
        figure = False
    if not figure:
        paths = paths[:1]
    ensure_new(paths, args.force)
    model = load_model(args.model)
    apply = {
        "encode": inference.encode_cube,
        "decode": inference.decode_raster,
        "reconstruct": inference.reconstruct_cube,
    }[args.verb]
    with _progress(cube, args.verb) as bar:
        errors = apply(model, cube, paths[0], args.block, bar.update, args.batch_size)
    if args.verb == "reconstruct":
        print(f"mean SSE {errors['sse']:.5g}, mean spectral angle {errors['sa']:.5g} rad")
    if len(paths) > 1 and args.verb == "encode":
        latent = read_overview(paths[0])
        save_figure(latent_figure(latent, f"{cube.path.name}: latent bands"), paths[1])
    elif len(paths) > 1:
        positions, spectra = inference.sample_spectra(cube, args.pixels, seed=0)
        scaled = model.scaling(spectra)
        rebuilt = inference.compiled(model.model, cube.bands, args.batch_size)(scaled)
        names = [f"row {r}, col {c}" for r, c in positions]
        title = f"{cube.path.name}: pre-processed spectra and reconstructions"
        blind = model.config["training"]["loss"] in {"sa", "csa", "sid"}  # to brightness
        save_figure(spectra_figure(scaled, rebuilt, names, title, fit_scale=blind), paths[1])
    for path in paths:
        print(f"wrote {path}")


def _predict(args: argparse.Namespace) -> None:
    import numpy as np

    from dltools.figures import class_map_figure, save_figure
    from dltools.io.geo import read_raster
    from dltools.io.images import write_image
    from dltools.spectral import inference
    from dltools.spectral.cube import open_cube
    from dltools.spectral.folder import load_model

    suffixes = ["_classes.tif", "_classes.png", "_classes_figure.png", "_scores.tif"]
    if args.features:
        suffixes.append(f"_features_{args.features}.tif")
    paths = _outputs(args, *suffixes)
    cube = open_cube(args.input, args.variable)
    picture = _is_picture(cube.shape)
    if not picture:
        _no_figure_note(cube)
    written = [p for p in paths if (args.scores or p != paths[3]) and (picture or p != paths[2])]
    ensure_new(written, args.force)
    model = load_model(args.model)
    classes = model.config["classes"]
    with _progress(cube, "predict") as bar:
        counts = inference.predict_cube(
            model,
            cube,
            paths[0],
            paths[3] if args.scores else None,
            (args.features, paths[4]) if args.features else None,
            args.unknown_below,
            args.block,
            bar.update,
            args.batch_size,
        )
    class_map = read_raster(paths[0])[..., 0]
    write_image(paths[1], class_map)
    if picture:
        colors = np.array(classes["colors"], np.uint8)
        title = f"{cube.path.name}: classes"
        figure = class_map_figure(class_map, classes["values"], classes["names"], colors, title)
        save_figure(figure, paths[2])
    total = max(sum(counts.values()), 1)
    for value, name in zip([0, *classes["values"]], ["unknown", *classes["names"]], strict=True):
        print(f"{value:5d} {name:<24} {counts[value]:12d} px  {100 * counts[value] / total:6.2f}%")
    for path in written:
        print(f"wrote {path}")


@reports_errors
def run(argv: list[str]) -> None:
    args = _parse(argv)
    if args.verb in {"train-ae", "train-classifier"}:
        _train(args, labels_needed=args.verb == "train-classifier")
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
