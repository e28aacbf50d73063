"""Step 3, retile: labelled images -> a library of class-pure tiles.

Images and label files are paired by :func:`dltools.io.discovery.find_labelled_images`; label
files are read as :class:`dltools.io.label_maps.LabelMap` (0 = unlabelled, ``k`` = class ``k``).
A window is kept when one class covers more than ``min_purity`` of its pixels
(:func:`dltools.engines.tiles.pure_windows`); unlabelled pixels count against purity and are
never a class. Rasters are processed block by block (each block holds at most about ``BLOCK``
x ``BLOCK`` pixels plus one window), so an orthomosaic of any size is tiled without being
loaded whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltools.engines.tiles import MAX_WIDTH, median_widths, pure_windows, width_histogram
from dltools.errors import DltoolsError
from dltools.io.geo import has_nodata, read_nodata_mask, read_raster
from dltools.io.images import image_shape, training_bands
from dltools.io.label_maps import LabelMap
from dltools.io.outputs import atomic_dir, remove_stale
from dltools.io.results import read_result
from dltools.io.tile_library import (
    MANIFEST,
    Tile,
    write_band_choice,
    write_manifest,
    write_tile,
)
from dltools.progress import Progress, quiet
from dltools.raster.bands import BandChoice
from dltools.raster.windows import block_index, block_of, block_windows, sample_windows
from dltools.scale.executor import Executor, InProcess

BLOCK = 2048  # windows are found and cut in blocks of about this many pixels per side
MIN_TILES_TO_THIN = 60  # only classes with more tiles than this are thinned by ``keep``
PURITY = 0.7  # -a: a tile is kept when one class covers more than this (2018: 0.9)
MAX_RATIO = 4.0  # --max-ratio: no class keeps more than this many times the rarest's tiles
DEFAULTS = {"min_purity": PURITY, "max_ratio": MAX_RATIO}
LEGACY = {"min_purity": 0.9, "max_ratio": None}  # dl_tools in 2018: purer tiles, no cap
LEGACY_TILE = 96  # dl_tools' tile size
# -t not given: the largest of these whose half every class's median width reaches (else the
# smallest); 96 px as in 2018, 48 px where classes are thin (roads, buildings: README step 3)
TILE_SIZES = (96, 64, 48)
MEASURED_BLOCKS = 8  # blocks of BLOCK px whose class widths are measured, per label file
NOTHING_TO_TILE = "no image has a label file, so there is nothing to tile"


def find_tiles(
    image: str | os.PathLike,
    label_map: LabelMap,
    size: int,
    stride: int,
    min_purity: float | np.ndarray,
) -> list[Tile]:
    """The pure windows of one image, read block by block (image nodata counts as unlabelled);
    ``min_purity``: one threshold or one per class (see
    :func:`dltools.engines.tiles.pure_windows`)."""
    image = Path(image)
    shape = image_shape(image)[:2]
    if shape != tuple(label_map.shape):
        raise DltoolsError(
            f"{image} is {shape[0]} x {shape[1]} pixels but its labels {label_map.path} are "
            f"{label_map.shape[0]} x {label_map.shape[1]}"
        )
    masked = has_nodata(image)
    tiles = []
    for block in block_windows(*shape, size, stride, BLOCK):
        labels = label_map.read(block)
        if masked:
            labels = np.where(read_nodata_mask(image, block), 0, labels)
        for row, col, label, purity in pure_windows(
            labels, size, stride, min_purity, len(label_map.class_names)
        ):
            tiles.append(Tile(image, block.row_off + row, block.col_off + col, label, purity))
    return tiles


def thin(tiles: Sequence[Tile], keep: float, seed: int = 0) -> list[Tile]:
    """Keep a random ``keep`` fraction (rounded) of each class with more than 60 tiles.

    Deterministic for a seed: classes are drawn in label order, each from its tiles sorted by
    image, row and column. Returns the kept tiles in that sorted order.
    """
    if not 0 < keep <= 1:
        raise DltoolsError(f"the fraction of tiles to keep must be in (0, 1], got {keep}")
    return _sample_classes(
        tiles, lambda n: round(keep * n) if n > MIN_TILES_TO_THIN and keep < 1 else None, seed
    )


def cap_classes(tiles: Sequence[Tile], ratio: float, seed: int = 0) -> list[Tile]:
    """Class-aware thinning: keep at most ``ratio`` times as many tiles of a class as the rarest
    class has (never fewer than 60 of a class), a seeded random choice.

    Unlike ``thin``'s one fraction for every class, this keeps every tile of the rare classes
    and thins only the common ones. Deterministic for a seed; returns the kept tiles sorted
    by image, row and column.
    """
    if ratio < 1:
        raise DltoolsError(f"the class ratio must be at least 1, got {ratio}")
    counts = np.bincount([t.label for t in tiles])
    present = counts[counts > 0]
    if not present.size:
        return []
    cap = max(MIN_TILES_TO_THIN, round(ratio * present.min()))
    return _sample_classes(tiles, lambda n: cap if n > cap else None, seed)


def _sample_classes(
    tiles: Sequence[Tile], quota: Callable[[int], int | None], seed: int
) -> list[Tile]:
    """A seeded random choice of ``quota(n)`` of the ``n`` tiles of each class (None: all, no
    draw), in the order :func:`thin` describes; returns them sorted by image, row and column."""
    rng = np.random.default_rng(seed)
    ordered = sorted(tiles, key=lambda t: (t.label, str(t.image), t.row, t.col))
    kept = []
    for label in sorted({t.label for t in ordered}):
        members = [t for t in ordered if t.label == label]
        if (size := quota(len(members))) is not None:
            members = [members[i] for i in np.sort(rng.choice(len(members), size, replace=False))]
        kept += members
    return sorted(kept, key=lambda t: (str(t.image), t.row, t.col))


def class_thresholds(
    names: Sequence[str], min_purity: float, class_purity: dict[str, float] | None
) -> float | np.ndarray:
    """``min_purity`` for every class, or (K,) thresholds with those of ``class_purity``
    (class name -> threshold) in place; an unknown name is a DltoolsError."""
    if not class_purity:
        return min_purity
    unknown = sorted(set(class_purity) - set(names))
    if unknown:
        raise DltoolsError(
            f"--class-purity names class(es) {', '.join(unknown)}, not among {', '.join(names)}"
        )
    values = np.array([class_purity.get(name, min_purity) for name in names], np.float64)
    if not ((values >= 0) & (values < 1)).all():
        raise DltoolsError("purity thresholds must lie in [0, 1)")
    return values


def cut_tiles(
    tiles: Sequence[Tile],
    size: int,
    stride: int,
    folder: Path,
    names: Sequence[str],
    bands: BandChoice,
    keep_going: bool,
) -> dict[Path, DltoolsError]:
    """Read each image block by block and write each tile's (size, size, 3) uint8 pixels, made
    by ``bands``, to ``folder/<class name>/<tile name>`` (``names``: the classes, label order).

    ``tiles`` must lie on the window grid of ``size`` and ``stride`` (as found by
    :func:`find_tiles`); only blocks that hold a tile are read. An unreadable image raises,
    or with ``keep_going`` is left (some of its tiles may have been written): returns
    ``{image: error}`` of those.
    """
    groups: dict[tuple[Path, int, int], list[Tile]] = {}
    for t in tiles:
        key = (t.image, *block_index(t.row, t.col, size, stride, BLOCK))
        groups.setdefault(key, []).append(t)
    failed: dict[Path, DltoolsError] = {}
    for (image, i, j), members in groups.items():
        if image in failed:
            continue
        try:
            block = block_of(i, j, *image_shape(image)[:2], size, stride, BLOCK)
            pixels = bands.apply(read_raster(image, block), image)
        except DltoolsError as err:
            if not keep_going:
                raise
            failed[image] = err
            continue
        for t in members:
            r, c = t.row - block.row_off, t.col - block.col_off
            write_tile(folder / names[t.label - 1] / t.name(), pixels[r : r + size, c : c + size])
    return failed


def _find_unit(task: tuple) -> list[Tile]:
    """:func:`find_tiles` of one ``(image, label file, names, colors, strict, size, stride,
    thresholds)``."""
    image, label_path, names, colors, strict, size, stride, thresholds = task
    return find_tiles(image, LabelMap(label_path, names, colors, strict), size, stride, thresholds)


def _width_unit(task: tuple) -> np.ndarray:
    """:func:`label_widths` of one ``(image, label file, names, colors, strict)``."""
    image, label_path, names, colors, strict = task
    return label_widths(image, LabelMap(label_path, names, colors, strict))


def _cut_unit(task: tuple) -> dict[Path, DltoolsError]:
    """:func:`cut_tiles` of one image's tiles into the library folder being built:
    ``(tiles, size, stride, folder, names, bands, keep_going)``."""
    return cut_tiles(*task)


@dataclass
class Library:
    """What :func:`retile` made: the folder, its tiles and the class names (label order)."""

    folder: Path
    tiles: list[Tile]
    class_names: list[str]
    bands: BandChoice
    failures: dict[Path, DltoolsError]
    stale: list[Path]  # staging folders of killed runs, removed

    def counts(self) -> dict[str, int]:
        """Tiles per class name, in class order (classes without tiles included)."""
        found = np.bincount([t.label for t in self.tiles], minlength=len(self.class_names) + 1)
        return {name: int(found[k + 1]) for k, name in enumerate(self.class_names)}


def label_widths(image: Path, label_map: LabelMap) -> np.ndarray:
    """(K, MAX_WIDTH + 1) int64 :func:`dltools.engines.tiles.width_histogram` of one label
    file, read block by block: every block of a photo, at most :data:`MEASURED_BLOCKS` spread
    over a larger raster (image nodata counts as unlabelled)."""
    image = Path(image)
    masked = has_nodata(image)
    counts = np.zeros((len(label_map.class_names), MAX_WIDTH + 1), np.int64)
    for block in sample_windows(*label_map.shape, BLOCK, MEASURED_BLOCKS):
        labels = label_map.read(block)
        if masked:
            labels = np.where(read_nodata_mask(image, block), 0, labels)
        counts += width_histogram(labels, len(label_map.class_names))
    return counts


def class_widths(
    pairs: Sequence[tuple[Path, Path]],
    class_names: Sequence[str] | None = None,
    colors: np.ndarray | None = None,
    strict: bool = False,
    keep_going: bool = False,
    executor: Executor | None = None,
    progress: Progress = quiet,
) -> dict[str, float]:
    """Median width in pixels of each class over every label file of ``pairs`` (classes with
    no labelled pixel left out): twice the median distance of its pixels to another class or
    to unlabelled pixels. Arguments as for :func:`retile`; with ``keep_going`` a label file
    that cannot be read is left out (retile reports it); ``progress`` follows the files."""
    names = _class_names(pairs, class_names)
    executor = InProcess() if executor is None else executor
    tasks = [(image, label, names, colors, strict) for image, label in pairs]
    counts = np.zeros((len(names), MAX_WIDTH + 1), np.int64)
    outcomes = executor.outcomes(_width_unit, tasks)
    for outcome in progress(outcomes, total=len(pairs), desc="class widths", unit="image"):
        if outcome.error is None:
            counts += outcome.value
        elif not (keep_going and isinstance(outcome.error, DltoolsError)):
            raise outcome.error
    medians = median_widths(counts)
    return {name: float(m) for name, m in zip(names, medians, strict=True) if np.isfinite(m)}


def choose_tile_size(widths: dict[str, float], sizes: Sequence[int] = TILE_SIZES) -> int:
    """The largest of ``sizes`` whose half is at most every class's median width (from
    :func:`class_widths`), else the smallest: a tile must be able to lie mostly inside a class
    for that class to get pure tiles."""
    thinnest = min(widths.values(), default=float("inf"))
    fitting = [size for size in sizes if size / 2 <= thinnest]
    return max(fitting) if fitting else min(sizes)


def library_folder(out_dir: str | os.PathLike, size: int) -> Path:
    """``OUT/tile_<size>``: where :func:`retile` writes."""
    return Path(out_dir) / f"tile_{size}"


def _class_names(pairs: Sequence[tuple[Path, Path]], labels: Sequence[str] | None) -> list[str]:
    if not pairs:
        raise DltoolsError(NOTHING_TO_TILE)
    if labels is not None:
        return list(labels)
    first_mat = next((lab for _, lab in pairs if lab.suffix.lower() == ".mat"), None)
    if first_mat is None:
        raise DltoolsError(
            "the labels are rasters: pass -l labels.txt to name their classes (value k = line k)"
        )
    return read_result(first_mat).labels


def retile(
    pairs: Sequence[tuple[Path, Path]],
    out_dir: str | os.PathLike,
    size: int = 96,
    min_purity: float = PURITY,
    keep: float = 1.0,
    stride: int | None = None,
    class_purity: dict[str, float] | None = None,
    max_ratio: float | None = MAX_RATIO,
    class_names: Sequence[str] | None = None,
    colors: np.ndarray | None = None,
    strict: bool = False,
    seed: int = 0,
    force: bool = False,
    progress: Progress = quiet,
    bands: Sequence[int] | None = None,
    stretch: tuple[float, float] | None = None,
    keep_going: bool = False,
    executor: Executor | None = None,
) -> Library:
    """Cut the pure windows of the ``(image, label file)`` pairs into ``OUT/tile_<size>/``.

    Tiles go to ``<class>/<image stem>_<row>_<col>.jpg`` with a ``tiles.csv`` manifest (tile,
    image, row, col, class, purity) and ``bands.json`` (which bands of the images, stretched
    how, made the 8-bit RGB tiles: ``bands`` and ``stretch``, see
    :func:`dltools.io.images.training_bands`). The folder appears complete or not at all; an
    existing one is an error unless ``force``. ``class_names`` defaults to the names in the
    first ``.mat``. ``colors`` ((K, 3) uint8, class ``k`` in ``colors[k - 1]``) make colour
    masks labels, read by :class:`dltools.io.label_maps.LabelMap` (``strict``: a colour of no
    class is an error). ``progress`` follows the loop over the pairs. With ``keep_going`` an
    image that cannot be read is left out of the library (none of its tiles) and reported in
    :attr:`Library.failures`. ``class_purity`` (class name -> threshold) overrides
    ``min_purity`` for those classes; ``max_ratio`` thins the common classes to at most that
    many times the tiles of the rarest (:func:`cap_classes`), after ``keep`` (None or 0: no
    such thinning; :data:`LEGACY` holds the 2018 settings). ``executor``
    finds and cuts the tiles of each image (default: here, one image after the other; or on a
    Dask cluster, one image per unit): the library is the same.
    """
    stride = size // 2 if stride is None else stride
    if size < 8 or stride <= 0:
        raise DltoolsError(
            f"tile size must be at least 8 and stride positive, got {size}, {stride}"
        )
    if not 0 <= min_purity < 1:
        raise DltoolsError(f"the purity threshold -a must be in [0, 1), got {min_purity}")
    if not 0 < keep <= 1:
        raise DltoolsError(f"-b (the fraction of tiles to keep) must be in (0, 1], got {keep}")
    if max_ratio and max_ratio < 1:
        raise DltoolsError(f"--max-ratio must be at least 1 (0: no cap), got {max_ratio}")
    final = library_folder(out_dir, size)
    if final.exists() and not force:
        raise DltoolsError(f"{final} already exists; move it away or pass --force to replace it")
    names = _class_names(pairs, class_names)
    thresholds = class_thresholds(names, min_purity, class_purity)
    choice = training_bands([image for image, _ in pairs], bands, stretch)
    shapes = [image_shape(image)[:2] for image, _ in pairs]
    if not any(size <= min(shape) for shape in shapes):
        biggest = max(shapes, key=min)
        raise DltoolsError(
            f"-t {size} is larger than every image (the biggest is {biggest[0]} x "
            f"{biggest[1]} pixels): no tile fits; choose a smaller -t"
        )
    executor = InProcess() if executor is None else executor
    per_image: list[list[Tile]] = [[] for _ in pairs]
    failures: dict[Path, DltoolsError] = {}
    finding = [
        (image, label, names, colors, strict, size, stride, thresholds) for image, label in pairs
    ]
    outcomes = executor.outcomes(_find_unit, finding)
    for outcome in progress(outcomes, total=len(pairs), desc="images", unit="image"):
        if isinstance(outcome.error, DltoolsError) and keep_going:
            failures[pairs[outcome.index][0]] = outcome.error
        elif outcome.error is not None:
            raise outcome.error
        else:
            per_image[outcome.index] = outcome.value
    tiles = thin([t for found in per_image for t in found], keep, seed)
    if max_ratio:
        tiles = cap_classes(tiles, max_ratio, seed)
    stale = remove_stale(final.parent, final.name)
    with atomic_dir(final) as tmp:
        for name in {names[t.label - 1] for t in tiles}:
            (tmp / name).mkdir()
        groups: dict[Path, list[Tile]] = {}
        for t in tiles:
            groups.setdefault(t.image, []).append(t)
        cutting = [(g, size, stride, tmp, names, choice, keep_going) for g in groups.values()]
        unreadable: dict[Path, DltoolsError] = {}
        for _, failed in executor.map_unordered(_cut_unit, cutting):
            unreadable.update(failed)
        for t in tiles:  # no half of an image in the library
            if t.image in unreadable:
                (tmp / names[t.label - 1] / t.name()).unlink(missing_ok=True)
        tiles = [t for t in tiles if t.image not in unreadable]
        failures.update(unreadable)
        write_manifest(tmp / MANIFEST, tiles, names)
        write_band_choice(tmp, choice)
    return Library(final, tiles, names, choice, failures, stale)
