"""One honest comparison (issue #17): every segmentation method with its defaults, scored on
images it never saw, on both shared data sets, against a per-pixel random forest of the same run.

Data sets (from ../shared), split by image group, k-fold:

- ``stmarg``: the 10 St Margaret's river frames (water, sediment, vegetation); one group per
  frame, 5 folds of 2 frames. ``--quick``: one fold, the 3 frames the test suite holds out
  (26818, 26836, 27113), images halved.
- ``dubai``: the 5 Dubai tiles (land, water, building, road, vegetation; colour masks read
  through labeldefs.txt, grey and black unlabelled); one group per tile, 5 folds (leave one
  tile out). ``--quick``: one fold (tile_1 held out), full size (the images are small and
  halving them erases the roads).

Every method keeps its defaults, ``--quick`` included (the FCN's 10 epochs too).

Methods, each trained on the training groups of a fold and run on its held-out images through
the command line with its defaults (only the paths, classes and the module are given):

- ``hybrid-crf`` / ``hybrid-mlp`` / ``hybrid-rf``: step 3 ``retile`` (tile size its own choice
  from the training label maps, or ``--tile``), step 4 ``retrain`` (MobileNetV2 from
  ../shared), step 6 ``segment --refine crf|mlp|rf``; the tile
  classifier's macro F1 on the held-out images' tiles (step 3 on them, step 5) is reported too;
- ``fcn``: step 8 ``fcn train`` (MobileNetV2 encoder weights from ../shared) and ``fcn infer``;
- ``fcn-crf``: the same trained network (trained once when both are asked for) and ``fcn
  infer-crf`` (the network's probabilities refined by the dense CRF at its defaults);
- ``rf-baseline``: a random forest (50 trees) on RGB plus the 5 x 5 local mean and standard
  deviation of each band, trained on up to 300,000 labelled pixels of the training images.

Scores are pooled over every held-out labelled pixel of every fold (unlabelled pixels left
out): pixel accuracy, macro F1, pixel-weighted F1, per-class F1. CPU minutes are the process's
user + system time (all threads and child processes) spent training and predicting, summed over
the folds; the load average is printed with them, since the machine may be shared.

    python bench/accuracy.py --quick               # about 60 min on 2 idle cores
    python bench/accuracy.py                       # every fold, full size
    python bench/accuracy.py --sets dubai --methods rf-baseline fcn --work /tmp/acc
    python bench/accuracy.py --sets dubai --methods hybrid-mlp --tile-models /tmp/acc \
        --segment-args "--fct 0.5" --work /tmp/acc_fct   # step 6 again on the same tile models
    python bench/accuracy.py --sets dubai --methods fcn fcn-crf --fcn-runs /tmp/acc \
        --work /tmp/acc_crf                              # step 8's inference again, both ways
    python bench/accuracy.py --sets dubai --methods fcn fcn-crf --fcn-runs /tmp/acc \
        --fcn-ensemble /tmp/acc_seed1 --work /tmp/acc_pair   # two networks averaged
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from matplotlib.colors import to_rgb

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODULE = SHARED / "models" / "mobilenet_v2_100_feature_vector"
ENCODER = SHARED / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
STMARG_NAMES = ["water", "sediment", "vegetation"]
STMARG_COLORS = ["b", "#D2691E", "g"]
STMARG_QUICK = ("26818", "26836", "27113")
HYBRID = ("hybrid-crf", "hybrid-mlp", "hybrid-rf")
FCN = ("fcn", "fcn-crf")
METHODS = (*HYBRID, *FCN, "rf-baseline")
STEP_COMMANDS = {"retile": "retile", "retrain": "retrain", "segment": "segment", "fcn": "fcn train"}
RF_SAMPLES = 300_000
RF_WINDOW = 5


# --- data ----------------------------------------------------------------------------------


@dataclass
class Item:
    """One image of a data set: its group, its pixels and labels (0 = unlabelled, k = class k)."""

    name: str
    group: str
    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) uint8


@dataclass
class DataSet:
    name: str
    classes: list[str]
    colors: list[str]  # matplotlib colour specs, one per class
    items: list[Item]
    folds: list[list[str]]  # held-out groups of each fold


def _shrink(image: np.ndarray, labels: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    if factor == 1:
        return image, labels
    size = (image.shape[1] // factor, image.shape[0] // factor)
    return (
        cv2.resize(image, size, interpolation=cv2.INTER_AREA),
        cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST),
    )


def load_stmarg(factor: int, quick: bool) -> DataSet:
    from dltools.io.geo import Window
    from dltools.io.images import read_image
    from dltools.io.label_maps import LabelMap

    folder = SHARED / "data" / "stmarg" / "train"
    items = []
    for path in sorted(folder.glob("StMarg_*.jpg")):
        number = path.stem.split("_")[1]
        label_map = LabelMap(folder / f"SCLS_StMarg{number}.tif", STMARG_NAMES)
        h, w = label_map.shape
        labels = label_map.read(Window(0, 0, w, h)).astype(np.uint8)
        image, labels = _shrink(read_image(path), labels, factor)
        items.append(Item(path.stem, number, image, labels))
    groups = [item.group for item in items]
    folds = [list(STMARG_QUICK)] if quick else [groups[i : i + 2] for i in range(0, 10, 2)]
    return DataSet("stmarg", STMARG_NAMES, STMARG_COLORS, items, folds)


def load_dubai(factor: int, quick: bool) -> DataSet:
    from dltools.io.images import read_image
    from dltools.io.label_maps import read_label_map
    from dltools.io.labels import read_classes

    root = SHARED / "data" / "dubai"
    classes = read_classes(labeldefs=root / "labeldefs.txt")
    items = []
    for tile in sorted(root.glob("tile_*")):
        for path in sorted((tile / "images").glob("*.jpg")):
            labels = read_label_map(tile / "masks" / f"{path.stem}.png", classes)
            image = read_image(path)[..., :3]
            if image.shape[:2] != labels.shape:
                raise SystemExit(f"{path}: image and mask sizes differ")
            image, labels = _shrink(image, labels, factor)
            items.append(Item(f"{tile.name}_{path.stem}", tile.name, image, labels))
    colors = ["#{:02x}{:02x}{:02x}".format(*rgb) for rgb in classes.colors.tolist()]
    groups = sorted({item.group for item in items})
    folds = [groups[:1]] if quick else [[g] for g in groups]
    return DataSet("dubai", list(classes.names), colors, items, folds)


def write_items(folder: Path, items: Sequence[Item], labels: bool = True) -> None:
    """``<name>.png`` images with (``labels``) ``<name>_label.png`` label rasters (value k =
    class k)."""
    from dltools.io.images import write_image

    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        write_image(folder / f"{item.name}.png", item.image)
        if labels:
            write_image(folder / f"{item.name}_label.png", item.labels)


# --- scoring -------------------------------------------------------------------------------


@dataclass
class Result:
    """Pooled confusion (rows = truth) and CPU seconds of one method over the folds."""

    confusion: np.ndarray
    cpu: float = 0.0
    extra: dict = field(default_factory=dict)


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def add_scores(result: Result, truth: np.ndarray, pred: np.ndarray) -> None:
    """Add labelled pixels of ``truth`` (0 = unlabelled, k = class k) against ``pred``
    (k = class k; 0 = no prediction, counted as wrong) to the confusion."""
    from dltools.engines.metrics import confusion_matrix

    k = result.confusion.shape[0]
    keep = truth > 0
    pred = pred[keep].astype(np.int64) - 1
    wrong = pred < 0
    pred[wrong] = (truth[keep][wrong].astype(np.int64)) % k  # another class than the truth
    result.confusion += confusion_matrix(truth[keep].astype(np.int64) - 1, pred, k)


# --- methods -------------------------------------------------------------------------------


def rf_features(image: np.ndarray) -> np.ndarray:
    """(H, W, 9) float32: RGB and each band's mean and standard deviation over 5 x 5."""
    bands = image.astype(np.float32)
    mean = cv2.blur(bands, (RF_WINDOW, RF_WINDOW))
    square = cv2.blur(bands * bands, (RF_WINDOW, RF_WINDOW))
    std = np.sqrt(np.maximum(square - mean * mean, 0))
    return np.concatenate([bands, mean, std], axis=2)


def rf_baseline(train: Sequence[Item], test: Sequence[Item], k: int, seed: int) -> dict:
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(seed)
    labelled = np.array([int((item.labels > 0).sum()) for item in train])
    share = np.minimum(1.0, RF_SAMPLES / max(1, labelled.sum()))
    xs, ys = [], []
    for item in train:
        rows, cols = np.nonzero(item.labels > 0)
        pick = rng.random(rows.size) < share
        xs.append(rf_features(item.image)[rows[pick], cols[pick]])
        ys.append(item.labels[rows[pick], cols[pick]])
    model = RandomForestClassifier(
        n_estimators=50, min_samples_leaf=5, max_depth=20, n_jobs=2, random_state=seed
    )
    model.fit(np.concatenate(xs), np.concatenate(ys))
    out = {}
    for item in test:
        features = rf_features(item.image).reshape(-1, 9)
        pred = np.concatenate(
            [model.predict(features[i : i + 500_000]) for i in range(0, len(features), 500_000)]
        )
        out[item.name] = pred.reshape(item.labels.shape).astype(np.uint8)
    return out


def _cli(*args) -> None:
    from dltools.cli import main as dltools_main

    status = dltools_main([str(a) for a in args])
    if status:
        raise SystemExit(f"dltools {args[0]} failed with status {status}")


def _read_prediction(path: Path, classes: Sequence[str]) -> np.ndarray:
    from dltools.io.label_maps import read_label_map
    from dltools.io.labels import Classes

    return read_label_map(path, Classes(list(classes), np.zeros((len(classes), 3), np.uint8)))


def tile_model(work: Path, extra: dict[str, list[str]], tile: int | None) -> dict:
    """Steps 3-5 with their defaults (plus ``extra`` arguments) on tiles of ``tile`` px (None:
    the size step 3 chooses): train the tile model in ``work``; return its scores on the
    held-out images' tiles."""
    labels = work / "labels.txt"
    size = [] if tile is None else ["-t", tile]
    _cli("retile", "-i", work / "train", "-l", labels, "-o", work, *size, *extra["retile"])
    (library,) = work.glob("tile_*")
    tile = int(library.name.removeprefix("tile_"))
    _cli(
        "retrain", "--image_dir", library, "--tfhub_module", MODULE,
        "--output_graph", work / "tile_model", "--output_labels", work / "tile_labels.txt",
        "--bottleneck_dir", work / "bottlenecks", *extra["retrain"],
    )  # fmt: skip
    # tile classification on the held-out images' own tiles (step 5), every tile over 90% one
    # class (step 3 --legacy: no class-aware thinning of a test set)
    _cli(
        "retile", "-i", work / "test", "-l", labels, "-o", work / "test_tiles", "-t", tile,
        "--legacy",
    )  # fmt: skip
    try:
        _cli(
            "eval-tiles", "-i", work / "test_tiles" / f"tile_{tile}",
            "-l", work / "tile_labels.txt", "-m", work / "tile_model", "-n", 100000,
            "-o", work / "tile_scores",
        )  # fmt: skip
        return json.loads((work / "tile_scores" / "test_metrics.json").read_text())
    except SystemExit as err:  # e.g. held-out tiles of a class the model does not know
        return {"error": str(err)}


def hybrid(
    work: Path,
    data: DataSet,
    test: Sequence[Item],
    refiners: Sequence[str],
    clock: dict,
    extra: dict[str, list[str]],
    tile: int | None = None,
    trained_in: Path | None = None,
) -> dict:
    """Steps 3-6 with their defaults (plus ``extra`` arguments of each step) on tiles of
    ``tile`` px (None: the size step 3 chooses), or step 6 alone with the tile model of an
    earlier run's fold folder ``trained_in`` (its training time then not counted); returns
    {method: {image: labels}} and the tile scores."""
    from dltools.models.metadata import model_tile_size

    start = cpu_seconds()
    if trained_in is None:
        tile_scores, trained_in = tile_model(work, extra, tile), work
    else:
        scores = trained_in / "tile_scores" / "test_metrics.json"
        tile_scores = json.loads(scores.read_text()) if scores.is_file() else {"error": "none"}
    trained = cpu_seconds() - start
    tile = model_tile_size(trained_in / "tile_model") if tile is None else tile
    out = {"tiles": tile_scores}
    for refiner in refiners:
        start = cpu_seconds()
        folder = work / f"seg_{refiner}"
        _cli(
            "segment", work / "test_images", "-m", trained_in / "tile_model",
            "-l", trained_in / "tile_labels.txt", "-c", work / "labeldefs.txt",
            "--refine", refiner, "--out-dir", folder, "-t", tile, *extra["segment"],
        )  # fmt: skip
        out[f"hybrid-{refiner}"] = {
            item.name: _read_prediction(folder / f"{item.name}_ares_{tile}.mat", data.classes)
            for item in test
        }
        clock[f"hybrid-{refiner}"] = trained + cpu_seconds() - start
    return out


def fcn(
    work: Path,
    data: DataSet,
    test: Sequence[Item],
    methods: Sequence[str],
    clock: dict,
    extra: dict[str, list[str]],
    trained_in: Path | None = None,
    members: Sequence[Path] = (),
) -> dict:
    """Step 8: train the network in ``work`` (or take the run of an earlier run's fold folder
    ``trained_in``, its training time then not counted), then ``fcn infer`` (method ``fcn``)
    and ``fcn infer-crf`` (``fcn-crf``) on the held-out images; with ``members`` (fold folders
    of earlier runs), their networks join this one as an ensemble (their training not
    counted)."""
    start = cpu_seconds()
    if trained_in is None:
        _cli(
            "fcn", "train", "--name", work / "fcn_run", "--data-dir", work / "train",
            "-l", work / "labels.txt", "--encoder-weights", ENCODER, *extra["fcn"],
        )  # fmt: skip
        trained_in = work
    trained = cpu_seconds() - start
    out = {}
    for method, command, tag in (("fcn", "infer", "fcn"), ("fcn-crf", "infer-crf", "fcn_crf")):
        if method not in methods:
            continue
        start = cpu_seconds()
        runs = [folder / "fcn_run" for folder in (trained_in, *members)]
        _cli("fcn", command, "--name", *runs, "--samples-dir", work / "test_images",
             "--output-dir", work / f"{tag}_out")  # fmt: skip
        clock[method] = trained + cpu_seconds() - start
        out[method] = {
            item.name: _read_prediction(
                work / f"{tag}_out" / f"{item.name}_ares_{tag}.mat", data.classes
            )
            for item in test
        }
    return out


# --- the run -------------------------------------------------------------------------------


def run_fold(
    work: Path,
    data: DataSet,
    held: Sequence[str],
    methods: Sequence[str],
    seed: int,
    extra: dict[str, list[str]],
    tile: int | None = None,
    trained_in: Path | None = None,
    fcn_in: Path | None = None,
    fcn_members: Sequence[Path] = (),
) -> tuple[dict, dict, dict]:
    """``({method: {image: prediction}}, {method: cpu seconds}, extras)`` of one fold; tile
    models from ``trained_in``, FCN runs from ``fcn_in`` and the FCN's ensemble members from
    ``fcn_members`` when given (see :func:`hybrid` and :func:`fcn`)."""
    train = [item for item in data.items if item.group not in held]
    test = [item for item in data.items if item.group in held]
    write_items(work / "train", train)
    write_items(work / "test", test)
    write_items(work / "test_images", test, labels=False)
    (work / "labels.txt").write_text("".join(f"{n}\n" for n in data.classes))
    (work / "labeldefs.txt").write_text(
        "".join(
            "{}, {}, {}, {}\n".format(n, *np.round(np.array(to_rgb(c)) * 255).astype(int))
            for n, c in zip(data.classes, data.colors, strict=True)
        )
    )
    preds, clock, extras = {}, {}, {}
    if "rf-baseline" in methods:
        start = cpu_seconds()
        preds["rf-baseline"] = rf_baseline(train, test, len(data.classes), seed)
        clock["rf-baseline"] = cpu_seconds() - start
    refiners = [m.split("-")[1] for m in methods if m in HYBRID]
    if refiners:
        found = hybrid(work, data, test, refiners, clock, extra, tile, trained_in)
        extras["tiles"] = found.pop("tiles")
        preds.update(found)
    if set(FCN) & set(methods):
        preds.update(fcn(work, data, test, methods, clock, extra, fcn_in, fcn_members))
    return preds, clock, extras


def pooled_tiles(tiles: Sequence[dict], classes: Sequence[str]) -> dict:
    """Step 5's scores of the tile confusions of every fold summed (classes matched by name;
    a fold whose held-out tiles could not be scored is left out)."""
    from dltools.engines.metrics import scores_from_confusion

    confusion = np.zeros((len(classes), len(classes)), np.int64)
    for fold in [t for t in tiles if "confusion" in t]:
        index = [list(classes).index(name) for name in fold["class_names"]]
        confusion[np.ix_(index, index)] += np.asarray(fold["confusion"], np.int64)
    scores = scores_from_confusion(confusion, classes)
    return {"accuracy": scores.accuracy, "macro_f1": scores.macro_f1, "n": int(confusion.sum())}


def table(data: DataSet, results: dict[str, Result], load: str) -> str:
    from dltools.engines.metrics import pixel_summary, scores_from_confusion

    head = "| method | pixel accuracy | macro F1 | pixel-weighted F1 | "
    head += " | ".join(f"F1 {n}" for n in data.classes) + " | CPU minutes |"
    lines = [head, "|" + " --- |" * (5 + len(data.classes))]
    for method, result in results.items():
        scores = scores_from_confusion(result.confusion, data.classes)
        s = pixel_summary(scores)
        f1 = " | ".join(f"{v:.3f}" for v in scores.f1)
        lines.append(
            f"| {method} | {s['accuracy']:.3f} | {s['macro_f1']:.3f} | {s['weighted_f1']:.3f} | "
            f"{f1} | {result.cpu / 60:.1f} |"
        )
    return "\n".join(lines) + f"\n\n(load average during the run: {load})"


def step_arguments(args: argparse.Namespace) -> dict[str, list[str]]:
    """The extra arguments of each step: ``--seed`` first, then the variant's own, which may
    override it."""
    seed = ["--seed", str(args.seed)]
    return {step: seed + shlex.split(getattr(args, f"{step}_args")) for step in STEP_COMMANDS}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one fold per set, river frames halved",
    )
    parser.add_argument(
        "--sets",
        nargs="+",
        default=["stmarg", "dubai"],
        choices=["stmarg", "dubai"],
        help="data sets of ../shared to score on (default: stmarg dubai)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=METHODS,
        help="methods to train and score (default: all)",
    )
    parser.add_argument(
        "--factor",
        type=int,
        help="downscale factor of every set (default: 1; --quick: 2 for the river frames)",
    )
    parser.add_argument(
        "--folds",
        type=int,
        nargs="+",
        metavar="N",
        help="run only these folds of each set, 0-based (default: all; the table then pools "
        "only these)",
    )
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the baseline and of every step that trains or samples (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--tile",
        type=int,
        help="tile size of the hybrid's steps 3 to 6, px (default: the size step 3 chooses "
        "from the label maps)",
    )
    parser.add_argument(
        "--tile-models",
        type=Path,
        metavar="WORK",
        help="the --work folder of an earlier run: its tile models (WORK/<set>/fold<n>/"
        "tile_model) segment again, so only step 6 runs (to measure --segment-args; its CPU "
        "minutes are step 6's alone; default: train them)",
    )
    parser.add_argument(
        "--fcn-runs",
        type=Path,
        metavar="WORK",
        help="the --work folder of an earlier run: its FCN runs (WORK/<set>/fold<n>/fcn_run) "
        "segment again, so only step 8's inference runs (its CPU minutes are inference's "
        "alone; default: train them)",
    )
    parser.add_argument(
        "--fcn-ensemble",
        type=Path,
        nargs="+",
        default=[],
        metavar="WORK",
        help="the --work folders of earlier runs: their FCN runs of the same fold join this "
        "run's network as an ensemble (`fcn infer --name RUN RUN ...`), their training not "
        "counted (default: none)",
    )
    for step, command in STEP_COMMANDS.items():
        parser.add_argument(
            f"--{step}-args",
            default="",
            metavar="ARGS",
            help=f"extra arguments of `dltools {command}`, quoted, to measure a variant "
            "(default: none)",
        )
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        raise SystemExit(f"../shared not found at {SHARED}: the data sets are needed")
    extra = step_arguments(args)
    loaders: dict[str, Callable[[int, bool], DataSet]] = {
        "stmarg": load_stmarg,
        "dubai": load_dubai,
    }
    root = args.work or Path(tempfile.mkdtemp(prefix="accuracy_"))
    report = {"argv": list(argv) if argv is not None else sys.argv[1:]}
    loads = []
    wall = time.time()
    for name in args.sets:
        factor = args.factor or (2 if args.quick and name == "stmarg" else 1)
        data = loaders[name](factor, args.quick)
        k = len(data.classes)
        results: dict[str, Result] = {}
        tiles = []
        folds = [
            (number, held)
            for number, held in enumerate(data.folds)
            if args.folds is None or number in args.folds
        ]
        for number, held in folds:
            work = root / name / f"fold{number}"
            if work.exists():
                raise SystemExit(f"{work} exists: give a new --work folder")
            print(f"== {name} fold {number}: held out {', '.join(held)}", flush=True)
            trained_in = args.tile_models and args.tile_models / name / f"fold{number}"
            fcn_in = args.fcn_runs and args.fcn_runs / name / f"fold{number}"
            members = [earlier / name / f"fold{number}" for earlier in args.fcn_ensemble]
            preds, clock, extras = run_fold(
                work,
                data,
                held,
                args.methods,
                args.seed,
                extra,
                args.tile,
                trained_in,
                fcn_in,
                members,
            )
            loads.append(os.getloadavg()[0])
            for method in [m for m in args.methods if m in preds]:
                result = results.setdefault(method, Result(np.zeros((k, k), np.int64)))
                result.cpu += clock[method]
                fold = Result(np.zeros((k, k), np.int64))
                for item in data.items:
                    if item.group in held:
                        add_scores(fold, item.labels, preds[method][item.name])
                result.confusion += fold.confusion
                accuracy = np.trace(fold.confusion) / max(fold.confusion.sum(), 1)
                print(f"   {method}: pixel accuracy {accuracy:.3f} on this fold", flush=True)
            if "tiles" in extras:
                tiles.append(extras["tiles"])
                print(f"   tile macro F1 {extras['tiles'].get('macro_f1')}", flush=True)
            print(f"   cpu minutes: { {m: round(c / 60, 1) for m, c in clock.items()} }")
        load = f"{min(loads):.1f}-{max(loads):.1f}"
        text = table(data, results, load)
        numbers = ", ".join(str(number) for number, _ in folds)
        print(f"\n### {name} (fold(s) {numbers} of {len(data.folds)}, images / {factor})\n")
        print(f"{text}\n")
        brief = [{key: t.get(key) for key in ("accuracy", "macro_f1", "n")} for t in tiles]
        pooled = pooled_tiles(tiles, data.classes) if tiles else None
        if tiles:
            print(f"tile classifier on the held-out images' tiles, per fold: {brief}")
            print(f"tile classifier, every fold's held-out tiles pooled: {pooled}")
        report[name] = {
            "folds": [held for _, held in folds],
            "factor": factor,
            "tiles": brief,
            "tiles_pooled": pooled,
            "methods": {
                m: {"confusion": r.confusion.tolist(), "cpu_s": r.cpu} for m, r in results.items()
            },
            "classes": data.classes,
            "table": text,
        }
    print(f"wall {(time.time() - wall) / 60:.1f} min; work folder {root}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
