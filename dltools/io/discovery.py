"""Finding images and their label files: the one image/label finder of every step.

Images and label files are paired by the rule of :mod:`dltools.io.pairs` (names compared
lowercased without punctuation; a label file belongs to the image whose name it contains).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from dltools.errors import DltoolsError
from dltools.io.images import image_shape, is_image_file, list_images
from dltools.io.pairs import pair_images_with_labels, pairing_key, visible_files

PRED_GLOB = "*_ares*.mat"
TRUE_GLOB = "*_mres*.mat"
OUTPUT_NAME = re.compile(r"_(ares|mres)(_|$)")  # outputs of steps 2 and 6: never inputs


def _is_label_of_another(path: Path, others: Sequence[Path]) -> bool:
    """True if ``path`` is a one-band raster named for one of ``others`` (with a shorter name)."""
    key = pairing_key(path)
    shorter = [p for p in others if len(pairing_key(p)) < len(key)]
    return (
        bool(shorter)
        and bool(pair_images_with_labels(shorter, [path])[0])
        and image_shape(path)[2] == 1
    )


def split_images_and_labels(files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """``(images, label rasters)`` among the image files of one folder: a file is a label
    raster when its name contains the name of another image there (see
    :func:`find_labelled_images`)."""
    labels = [p for p in files if _is_label_of_another(p, [q for q in files if q != p])]
    return [p for p in files if p not in labels], labels


def _preference(label: Path) -> int:
    """Rank of a label file when an image has several: a ``.mat`` (0), an index raster (1),
    a derived ``_gtFine_labelIds`` image (2), a colour image (3, ``color`` in its name)."""
    if label.suffix.lower() == ".mat":
        return 0
    name = label.stem.casefold()
    if "color" in name or "colour" in name:
        return 3
    return 2 if name.endswith("labelids") else 1


def pair_preferring(
    images: Sequence[Path], labels: Sequence[Path], names: Sequence[Path] | None = None
) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pair images with label files; an image with several takes the one that ranks first
    (see :func:`_preference`). ``names``: the paths whose names are used for pairing (default
    ``images``). Returns ``(pairs, unpaired images)`` in the order of ``images``."""
    keys = list(images if names is None else names)
    real = dict(zip(keys, images, strict=True))
    pairs, remaining = [], keys
    for rank in range(4):
        found, remaining = pair_images_with_labels(
            remaining, [p for p in labels if _preference(p) == rank]
        )
        pairs += found
    order = {key: i for i, key in enumerate(keys)}
    pairs.sort(key=lambda pair: order[pair[0]])
    return [(real[k], label) for k, label in pairs], [real[k] for k in remaining]


def _files_under(folder: Path, keep: Callable[[Path], bool]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and keep(p)
    )


def _without_rgb(path: Path) -> Path:
    """``x_RGB.png`` -> ``x.png``: the original layout's image names end in RGB."""
    stem = path.stem
    for tail in ("_RGB", "-RGB", "RGB"):
        if stem.endswith(tail) and len(stem) > len(tail):
            return path.with_name(stem[: -len(tail)] + path.suffix)
    return path


def original_layout(data_dir: str | os.PathLike) -> dict[str, list[tuple[Path, Path]]] | None:
    """``{"train": pairs, "val": pairs}`` of the original layout, or None if ``data_dir``
    has no ``samples/RGB`` folder. Images without labels are a DltoolsError."""
    root = Path(data_dir)
    if not (root / "samples" / "RGB").is_dir():
        return None
    splits = {}
    for split in ("train", "val"):
        images = _files_under(root / "samples" / "RGB" / split, is_image_file)
        labels = _files_under(
            root / "labels" / "gtFine" / split,
            lambda p: is_image_file(p) or p.suffix.lower() == ".mat",
        )
        pairs, unpaired = pair_preferring(images, labels, [_without_rgb(p) for p in images])
        if unpaired:
            listed = ", ".join(str(p) for p in unpaired[:5])
            raise DltoolsError(
                f"{len(unpaired)} image(s) in {root / 'samples' / 'RGB' / split} have no label "
                f"file in {root / 'labels' / 'gtFine' / split}: {listed}"
            )
        splits[split] = pairs
    if not splits["train"]:
        raise DltoolsError(f"no training images found in {root / 'samples' / 'RGB' / 'train'}")
    return splits


def split_pairs(
    pairs: Sequence[tuple[Path, Path]], val_fraction: float, seed: int = 0
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """``(train, val)``: ``round(val_fraction * N)`` randomly chosen pairs (at least one when
    ``val_fraction`` > 0 and N >= 2) are held out for validation, whole images at a time."""
    if not 0 <= val_fraction < 1:
        raise DltoolsError(f"--val-fraction must lie in [0, 1), got {val_fraction}")
    n_val = round(val_fraction * len(pairs))
    if val_fraction > 0 and len(pairs) >= 2:
        n_val = min(max(n_val, 1), len(pairs) - 1)
    held = set(np.random.default_rng(seed).permutation(len(pairs))[:n_val].tolist())
    train = [p for i, p in enumerate(pairs) if i not in held]
    return train, [p for i, p in enumerate(pairs) if i in held]


def label_results(folder: str | os.PathLike) -> dict[Path, str]:
    """``{path: image name}`` of the label results of step 2 in ``folder`` (``<name>_mres.mat``;
    hidden files skipped), in name order."""
    found = sorted(p for p in Path(folder).glob("*_mres.mat") if not p.name.startswith("."))
    return {path: path.name.removesuffix("_mres.mat") for path in found}


def find_labelled_images(
    image_dir: str | os.PathLike,
    label_dir: str | os.PathLike | None = None,
    prefer: bool = False,
) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pair the images of ``image_dir`` with their label files; return ``(pairs, unlabelled)``.

    Label files are the ``*_mres.mat`` files and the label rasters of ``label_dir`` (default:
    ``image_dir``), paired by :func:`dltools.io.pairs.pair_images_with_labels`. In a folder that
    holds both, an image file is a label raster when it has one band and its name contains the
    name of another image there (``SCLS_StMarg26607.tif`` contains ``StMarg_26607.jpg``,
    ``a_label.png`` contains ``a.jpg``, but the photo ``a_north.jpg`` is no label); the other
    image files are the images. An image with several label files is an error, unless
    ``prefer``: then it takes the one that ranks first (see :func:`pair_preferring`).
    """
    image_dir = Path(image_dir)
    label_dir = image_dir if label_dir is None else Path(label_dir)
    files = list_images(image_dir)
    if label_dir.resolve() == image_dir.resolve():
        images, candidates = split_images_and_labels(files)
    else:
        images, candidates = files, list_images(label_dir)
    candidates += list(label_results(label_dir))
    if prefer:
        return pair_preferring(images, candidates)
    return pair_images_with_labels(images, candidates)


def find_images(inputs: Sequence[str]) -> list[Path]:
    """The images named in ``inputs`` or found in the folders named there: not label rasters,
    not the outputs of steps 2 and 6."""
    images = []
    for item in map(Path, inputs):
        if item.is_dir():
            pairs, unlabelled = find_labelled_images(item)
            found = sorted([image for image, _ in pairs] + unlabelled)
            images += [p for p in found if not OUTPUT_NAME.search(p.stem)]
        elif item.is_file() and is_image_file(item):
            images.append(item)
        else:
            raise DltoolsError(f"{item}: not an image file or folder")
    if not images:
        raise DltoolsError(f"no images to segment in {', '.join(inputs)}")
    return images


def image_name(path: str | os.PathLike) -> str:
    """The image a result file was made from: its stem up to its last ``_ares`` / ``_mres``
    (``X_ares_96.mat`` -> ``X``, ``X_mres_v2.mat`` -> ``X``); other files keep their stem."""
    stem = Path(path).stem
    found = re.match(r"(.+)_[am]res(?:_.*)?$", stem)
    return found.group(1) if found else stem


def pair_predictions(
    pred_dir: str | os.PathLike,
    true_dir: str | os.PathLike | None = None,
    pred_glob: str = PRED_GLOB,
    true_glob: str = TRUE_GLOB,
) -> list[tuple[Path, Path]]:
    """``(prediction, manual label)`` pairs: files of ``pred_dir`` matching ``pred_glob`` with
    files of ``true_dir`` (default: ``pred_dir``) matching ``true_glob``.

    A prediction without a manual label is a DltoolsError naming it.
    """
    pred_dir = Path(pred_dir)
    true_dir = pred_dir if true_dir is None else Path(true_dir)
    preds = visible_files(pred_dir, pred_glob)
    if not preds:
        raise DltoolsError(f"{pred_dir}: no predictions matching {pred_glob}")
    own = {p.resolve() for p in preds}
    truths = [p for p in visible_files(true_dir, true_glob) if p.resolve() not in own]
    images = {pred: Path(f"{image_name(pred)}.image") for pred in preds}
    pairs, unpaired = pair_images_with_labels(sorted(set(images.values())), truths)
    if unpaired:
        lacking = [pred.name for pred, image in images.items() if image in unpaired]
        raise DltoolsError(
            f"no manual label ({true_glob} in {true_dir}) for: {', '.join(lacking)}; a manual "
            "label's name must contain the prediction's image name (X_ares_96.mat <- X_mres.mat, "
            "SCLS_X.tif, X_label.png)"
        )
    truth_of = dict(pairs)
    return [(pred, truth_of[images[pred]]) for pred in preds]
