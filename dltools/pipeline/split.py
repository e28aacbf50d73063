"""Step 1: split a folder of images into sibling ``train/`` and ``test/`` folders.

Also places result files (``<name>_mres.mat``) next to their images after a split.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltools.errors import DltoolsError
from dltools.io.discovery import label_results
from dltools.io.images import list_images
from dltools.io.outputs import atomic_path, ensure_new
from dltools.progress import Progress, quiet

SPLIT_NAMES = ("train", "test")


@dataclass(frozen=True)
class Split:
    """Where each image went: paths inside the new ``train/`` and ``test/`` folders."""

    train: list[Path]
    test: list[Path]


def choose_train(names: Sequence[str], fraction: float, seed: int = 0) -> set[str]:
    """Pick ``int(fraction * len(names))`` names at random for training.

    The choice depends only on the set of names, ``fraction`` and ``seed`` (names are sorted
    first), so a listing in another order gives the same split.
    """
    if not 0.0 < fraction < 1.0:
        raise DltoolsError(f"-p (the training fraction) must lie between 0 and 1, got {fraction}")
    ordered = sorted(names)
    n_train = int(fraction * len(ordered))
    if n_train == 0 or n_train == len(ordered):
        raise DltoolsError(
            f"a fraction of {fraction} of {len(ordered)} image(s) leaves train/ or test/ empty; "
            "add images or change the fraction"
        )
    order = np.random.default_rng(seed).permutation(len(ordered))
    return {ordered[i] for i in order[:n_train]}


def split_folder(
    folder: str | Path,
    fraction: float,
    seed: int = 0,
    move: bool = False,
    progress: Progress = quiet,
) -> Split:
    """Copy (or move) the images of ``folder`` into ``train/`` and ``test/`` beside it.

    Non-image files are ignored. Existing ``train/`` or ``test/`` folders are an error, never
    merged into. The folders appear only when every file is in place: the images are staged
    in hidden folders first and those are renamed at the end; originals are removed (``move``)
    only after that.
    """
    folder = Path(folder)
    images = list_images(folder)
    if not images:
        raise DltoolsError(f"no images (jpg, png, tif) in {folder}")
    targets = {name: folder.parent / name for name in SPLIT_NAMES}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing:
        raise DltoolsError(
            f"{' and '.join(existing)} already exist(s); move them away first "
            "(a split never merges into earlier splits)"
        )
    train_names = choose_train([image.name for image in images], fraction, seed)
    staged = {name: folder.parent / f".{name}.partial" for name in SPLIT_NAMES}
    for path in staged.values():
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir()
    try:
        for image in progress(images, desc="split", unit="image"):
            side = "train" if image.name in train_names else "test"
            shutil.copy2(image, staged[side] / image.name)
        for name in SPLIT_NAMES:
            staged[name].rename(targets[name])
    except BaseException:
        for path in (*staged.values(), *targets.values()):
            shutil.rmtree(path, ignore_errors=True)
        raise
    if move:
        for image in images:
            image.unlink()
    return Split(
        train=sorted(targets["train"] / n for n in train_names),
        test=sorted(targets["test"] / i.name for i in images if i.name not in train_names),
    )


def copy_results_to_split(
    results_dir: str | Path, data_dir: str | Path, force: bool = False, progress: Progress = quiet
) -> tuple[list[Path], list[Path]]:
    """Copy each ``<name>_mres.mat`` of ``results_dir`` next to the image ``<name>.*``.

    The image is looked for in ``data_dir/train`` and ``data_dir/test``.

    Returns:
        (copied, unmatched): the new files, and the result files whose image is in neither folder.
    """
    results_dir, data_dir = Path(results_dir), Path(data_dir)
    if not results_dir.is_dir():
        raise DltoolsError(f"results folder not found: {results_dir}")
    sides = [data_dir / name for name in SPLIT_NAMES if (data_dir / name).is_dir()]
    if not sides:
        raise DltoolsError(f"neither {data_dir / 'train'} nor {data_dir / 'test'} exists")
    where = {image.stem: side for side in sides for image in list_images(side)}
    plan, unmatched = [], []
    for result, stem in label_results(results_dir).items():
        if stem in where:
            plan.append((result, where[stem] / result.name))
        else:
            unmatched.append(result)
    ensure_new((dst for _, dst in plan), force=force)
    for src, dst in progress(plan, desc="cp_mat", unit="file"):
        with atomic_path(dst) as tmp:
            shutil.copy2(src, tmp)
    return [dst for _, dst in plan], unmatched
