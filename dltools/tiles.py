"""Sliding windows, purity and retiling: labelled images -> a library of class tiles.

Label maps here are ``(H, W)`` integer arrays in which 0 means unlabelled and ``k`` means class
``k`` (1-based, the line of labels.txt). They come from ``<name>_mres.mat`` files (class index
+ 1) or from label rasters (the stored value; 0, NaN and nodata are unlabelled); see
:func:`find_labelled_images` for how images and label files are paired.

A window is kept when one class covers more than ``min_purity`` of its pixels; unlabelled pixels
count against purity and are never a class. Rasters are processed block by block (each block
holds at most about ``BLOCK`` x ``BLOCK`` pixels plus one window), so an orthomosaic of any
size is tiled without being loaded whole.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rasterio.enums import MaskFlags

from dltools.errors import DltoolsError
from dltools.io.geo import Window, open_raster, read_raster
from dltools.io.images import image_shape, is_image_file, list_images, read_image
from dltools.io.pairs import pair_images_with_labels, pairing_key
from dltools.io.results import read_result

BLOCK = 2048  # windows are found and cut in blocks of about this many pixels per side
MIN_TILES_TO_THIN = 60  # only classes with more tiles than this are thinned by ``keep``
MANIFEST = "tiles.csv"
JPEG_QUALITY = 95  # as dltools.io.images.write_image


@dataclass(frozen=True)
class Tile:
    """One kept window: top-left pixel ``(row, col)`` of ``image``; ``label`` is 1-based."""

    image: Path
    row: int
    col: int
    label: int
    purity: float

    def name(self) -> str:
        """The tile's file name: ``<image stem>_<row>_<col>.jpg``."""
        return f"{self.image.stem}_{self.row}_{self.col}.jpg"


# --- pairing -------------------------------------------------------------------------------


def _is_label_of_another(path: Path, others: Sequence[Path]) -> bool:
    """True if ``path`` is a one-band raster named for one of ``others`` (with a shorter name)."""
    key = pairing_key(path)
    shorter = [p for p in others if len(pairing_key(p)) < len(key)]
    return (
        bool(shorter)
        and bool(pair_images_with_labels(shorter, [path])[0])
        and image_shape(path)[2] == 1
    )


def find_labelled_images(
    image_dir: str | os.PathLike, label_dir: str | os.PathLike | None = None
) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pair the images of ``image_dir`` with their label files; return ``(pairs, unlabelled)``.

    Label files are the ``*_mres.mat`` files and the label rasters of ``label_dir`` (default:
    ``image_dir``), paired by :func:`dltools.io.pairs.pair_images_with_labels`. In a folder that
    holds both, an image file is a label raster when it has one band and its name contains the
    name of another image there (``SCLS_StMarg26607.tif`` contains ``StMarg_26607.jpg``,
    ``a_label.png`` contains ``a.jpg``, but the photo ``a_north.jpg`` is no label); the other
    image files are the images.
    """
    image_dir = Path(image_dir)
    label_dir = image_dir if label_dir is None else Path(label_dir)
    files = list_images(image_dir)
    if label_dir == image_dir:
        candidates = [p for p in files if _is_label_of_another(p, [q for q in files if q != p])]
        images = [p for p in files if p not in candidates]
    else:
        images = files
        candidates = list_images(label_dir)
    candidates += sorted(p for p in label_dir.glob("*_mres.mat") if not p.name.startswith("."))
    return pair_images_with_labels(images, candidates)


# --- label maps ----------------------------------------------------------------------------


class LabelMap:
    """The label map of one image, read by window: 0 = unlabelled, ``k`` = class ``k``.

    ``path`` is a ``*_mres.mat`` file (read whole, mapped onto ``class_names`` by name; without
    names the file's own order is used) or a one-band label raster (read window by window).
    """

    def __init__(self, path: str | os.PathLike, class_names: Sequence[str] | None):
        self.path = Path(path)
        self.array: np.ndarray | None = None
        if self.path.suffix.lower() == ".mat":
            result = read_result(self.path, class_names)
            self.class_names = result.labels
            self.array = np.where(result.class_map < 0, 0, result.class_map.astype(np.int32) + 1)
            self.shape = self.array.shape
            return
        if class_names is None:
            raise DltoolsError(
                f"{self.path} is a label raster: pass -l labels.txt to name its classes "
                "(value k = line k; 0 = unlabelled)"
            )
        self.class_names = list(class_names)
        with open_raster(self.path) as src:
            if src.count != 1:
                raise DltoolsError(
                    f"{self.path}: a label raster must have one band, this one has {src.count}"
                )
            self.shape = (src.height, src.width)
            self.masked = MaskFlags.all_valid not in src.mask_flag_enums[0]

    def read(self, window: Window) -> np.ndarray:
        """``(h, w)`` int32 labels of ``window``; values outside 0..K are a DltoolsError."""
        if self.array is not None:
            rows, cols = window.toslices()
            return self.array[rows, cols]
        values = read_raster(self.path, window)[..., 0]
        if values.dtype.kind == "f":
            values = np.nan_to_num(values, nan=0.0)
            if not np.array_equal(values, np.round(values)):
                raise DltoolsError(f"{self.path}: label values must be whole numbers")
        if self.masked:
            values = np.where(_nodata(self.path, window), 0, values)
        count = len(self.class_names)
        if values.size and (values.min() < 0 or values.max() > count):
            raise DltoolsError(
                f"{self.path}: label value {values.max() if values.max() > count else values.min()}"
                f" found, but the labels file names {count} classes (values 1..{count}, "
                "0 = unlabelled); is this the right labels file?"
            )
        return values.astype(np.int32)


def _nodata(path: Path, window: Window) -> np.ndarray:
    with open_raster(path) as src:
        return src.dataset_mask(window=window) == 0


def _has_nodata(path: Path) -> bool:
    with open_raster(path) as src:
        return any(MaskFlags.all_valid not in flags for flags in src.mask_flag_enums)


# --- windows and purity --------------------------------------------------------------------


def window_origins(length: int, size: int, stride: int) -> np.ndarray:
    """Offsets ``0, stride, 2*stride, ...`` of the whole windows along an axis of ``length``."""
    if size <= 0 or stride <= 0:
        raise ValueError(f"need size > 0 and stride > 0, got {size=}, {stride=}")
    return np.arange(0, max(length - size + 1, 0), stride)


def window_class_counts(
    labels: np.ndarray, size: int, rows: np.ndarray, cols: np.ndarray, n_classes: int
) -> np.ndarray:
    """Pixels of each class in the ``size`` x ``size`` windows at ``rows`` x ``cols``.

    labels: (H, W) int, 0 = unlabelled, k = class k. Returns (len(rows), len(cols), n_classes)
    int64, channel ``k - 1`` counting class ``k`` (summed-area tables, one class at a time).
    """
    counts = np.empty((len(rows), len(cols), n_classes), np.int64)
    for k in range(1, n_classes + 1):
        table = np.zeros((labels.shape[0] + 1, labels.shape[1] + 1), np.int64)
        np.cumsum(np.cumsum(labels == k, axis=0), axis=1, out=table[1:, 1:])
        r0, c0 = rows[:, None], cols[None, :]
        counts[..., k - 1] = (
            table[r0 + size, c0 + size]
            - table[r0, c0 + size]
            - table[r0 + size, c0]
            + table[r0, c0]
        )
    return counts


def pure_windows(
    labels: np.ndarray, size: int, stride: int, min_purity: float, n_classes: int
) -> list[tuple[int, int, int, float]]:
    """``(row, col, label, purity)`` of the whole windows of ``labels`` that one class dominates.

    labels: (H, W) int, 0 = unlabelled, k = class k (1..n_classes). A window is kept when its
    commonest class covers more than ``min_purity`` of its ``size * size`` pixels.
    """
    rows = window_origins(labels.shape[0], size, stride)
    cols = window_origins(labels.shape[1], size, stride)
    if not (rows.size and cols.size):
        return []
    counts = window_class_counts(labels, size, rows, cols, n_classes)
    purity = counts.max(axis=2) / float(size * size)
    best = counts.argmax(axis=2) + 1
    keep_r, keep_c = np.nonzero(purity > min_purity)
    return [
        (int(rows[i]), int(cols[j]), int(best[i, j]), float(purity[i, j]))
        for i, j in zip(keep_r, keep_c, strict=True)
    ]


def _per_block(size: int, stride: int) -> int:
    """Window origins per block side, so that a block spans about BLOCK pixels."""
    return max(1, (BLOCK - size) // stride + 1)


def _block(i: int, j: int, height: int, width: int, size: int, stride: int) -> Window:
    """Block ``(i, j)``: the pixels of the windows whose origin indices fall in it."""
    per = _per_block(size, stride)
    r = window_origins(height, size, stride)[i * per : (i + 1) * per]
    c = window_origins(width, size, stride)[j * per : (j + 1) * per]
    return Window(int(c[0]), int(r[0]), int(c[-1] - c[0] + size), int(r[-1] - r[0] + size))


def _blocks(height: int, width: int, size: int, stride: int) -> Iterator[Window]:
    """Blocks of about BLOCK pixels that together hold every whole window exactly once."""
    per = _per_block(size, stride)
    n_rows = len(window_origins(height, size, stride))
    n_cols = len(window_origins(width, size, stride))
    for i in range(-(-n_rows // per)):
        for j in range(-(-n_cols // per)):
            yield _block(i, j, height, width, size, stride)


def find_tiles(
    image: str | os.PathLike,
    label_map: LabelMap,
    size: int,
    stride: int,
    min_purity: float,
) -> list[Tile]:
    """The pure windows of one image, read block by block (image nodata counts as unlabelled)."""
    image = Path(image)
    with open_raster(image) as src:
        shape = (src.height, src.width)
    if shape != tuple(label_map.shape):
        raise DltoolsError(
            f"{image} is {shape[0]} x {shape[1]} pixels but its labels {label_map.path} are "
            f"{label_map.shape[0]} x {label_map.shape[1]}"
        )
    masked = _has_nodata(image)
    tiles = []
    for block in _blocks(*shape, size, stride):
        labels = label_map.read(block)
        if masked:
            labels = np.where(_nodata(image, block), 0, labels)
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
    rng = np.random.default_rng(seed)
    ordered = sorted(tiles, key=lambda t: (t.label, str(t.image), t.row, t.col))
    kept = []
    for label in sorted({t.label for t in ordered}):
        members = [t for t in ordered if t.label == label]
        if len(members) > MIN_TILES_TO_THIN and keep < 1:
            chosen = rng.choice(len(members), size=round(keep * len(members)), replace=False)
            members = [members[i] for i in np.sort(chosen)]
        kept += members
    return sorted(kept, key=lambda t: (str(t.image), t.row, t.col))


def _rgb8(pixels: np.ndarray, image: Path) -> np.ndarray:
    """An image window as (h, w, 3) uint8 RGB for a JPG tile (grey is repeated)."""
    if pixels.dtype != np.uint8:
        raise DltoolsError(
            f"{image} holds {pixels.dtype} pixels; tiles are 8-bit JPGs, so convert the image to "
            "8-bit RGB first (e.g. gdal_translate -ot Byte -scale)"
        )
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if pixels.shape[2] == 2:
        raise DltoolsError(f"{image} has 2 bands; tiles need 1 (grey) or 3+ (RGB) bands")
    return pixels[..., :3]


def cut_tiles(
    tiles: Sequence[Tile], size: int, stride: int, write: Callable[[Tile, np.ndarray], None]
) -> None:
    """Read each image block by block and call ``write(tile, (size, size, 3) uint8 pixels)``.

    ``tiles`` must lie on the window grid of ``size`` and ``stride`` (as found by
    :func:`find_tiles`); only blocks that hold a tile are read.
    """
    per = _per_block(size, stride)
    groups: dict[tuple[Path, int, int], list[Tile]] = {}
    for t in tiles:
        groups.setdefault((t.image, t.row // stride // per, t.col // stride // per), []).append(t)
    for (image, i, j), members in groups.items():
        with open_raster(image) as src:
            block = _block(i, j, src.height, src.width, size, stride)
        pixels = _rgb8(read_raster(image, block), image)
        for t in members:
            r, c = t.row - block.row_off, t.col - block.col_off
            write(t, pixels[r : r + size, c : c + size])


@dataclass
class Library:
    """What :func:`retile` made: the folder, its tiles and the class names (label order)."""

    folder: Path
    tiles: list[Tile]
    class_names: list[str]

    def counts(self) -> dict[str, int]:
        """Tiles per class name, in class order (classes without tiles included)."""
        found = np.bincount([t.label for t in self.tiles], minlength=len(self.class_names) + 1)
        return {name: int(found[k + 1]) for k, name in enumerate(self.class_names)}


def library_folder(out_dir: str | os.PathLike, size: int) -> Path:
    """``OUT/tile_<size>``: where :func:`retile` writes."""
    return Path(out_dir) / f"tile_{size}"


def _class_names(pairs: Sequence[tuple[Path, Path]], labels: Sequence[str] | None) -> list[str]:
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
    min_purity: float = 0.9,
    keep: float = 1.0,
    stride: int | None = None,
    class_names: Sequence[str] | None = None,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[Iterator], Iterator] = iter,
) -> Library:
    """Cut the pure windows of the ``(image, label file)`` pairs into ``OUT/tile_<size>/``.

    Tiles go to ``<class>/<image stem>_<row>_<col>.jpg`` with a ``tiles.csv`` manifest (tile,
    image, row, col, class, purity). The folder appears complete or not at all; an existing one
    is an error unless ``force``. ``class_names`` defaults to the names in the first ``.mat``.
    ``progress`` wraps the loop over pairs (e.g. ``tqdm``).
    """
    stride = size // 2 if stride is None else stride
    if size < 8 or stride <= 0:
        raise DltoolsError(
            f"tile size must be at least 8 and stride positive, got {size}, {stride}"
        )
    if not 0 <= min_purity < 1:
        raise DltoolsError(f"the purity threshold -a must be in [0, 1), got {min_purity}")
    final = library_folder(out_dir, size)
    if final.exists() and not force:
        raise DltoolsError(f"{final} already exists; move it away or pass --force to replace it")
    if not pairs:
        raise DltoolsError("no image has a label file, so there is nothing to tile")
    names = _class_names(pairs, class_names)
    found = []
    for image, label_path in progress(pairs):
        found += find_tiles(image, LabelMap(label_path, names), size, stride, min_purity)
    tiles = thin(found, keep, seed)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        for name in {names[t.label - 1] for t in tiles}:
            (tmp / name).mkdir()
        cut_tiles(
            tiles,
            size,
            stride,
            lambda t, px: _write_jpg(tmp / names[t.label - 1] / t.name(), px),
        )
        _write_manifest(tmp / MANIFEST, tiles, names)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Library(final, tiles, names)


def _write_jpg(path: Path, rgb: np.ndarray) -> None:
    """Encode a (h, w, 3) uint8 tile as JPG; 4x faster than write_image for thousands of tiles.

    No per-file atomic rename: the whole library folder is renamed into place at the end.
    """
    ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    path.write_bytes(data.tobytes())


def _write_manifest(path: Path, tiles: Sequence[Tile], names: Sequence[str]) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["tile", "image", "row", "col", "class", "purity"])
        for t in tiles:
            name = names[t.label - 1]
            out.writerow(
                [f"{name}/{t.name()}", t.image.name, t.row, t.col, name, f"{t.purity:.4f}"]
            )


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a ``tiles.csv`` as dicts (tile, image, row, col, class, purity)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def list_tile_classes(tile_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """``{class name: sorted tile images}`` for each subfolder of a tile library, sorted by name.

    Empty class folders (no image files) are a DltoolsError naming them.
    """
    tile_dir = Path(tile_dir)
    if not tile_dir.is_dir():
        raise DltoolsError(f"{tile_dir}: tile folder not found")
    classes = {
        p.name: sorted(f for f in p.iterdir() if f.is_file() and is_image_file(f))
        for p in sorted(tile_dir.iterdir())
        if p.is_dir() and not p.name.startswith(".")
    }
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise DltoolsError(
            f"{tile_dir}: class folder(s) without any image: {', '.join(empty)}; "
            "add tiles or remove the folder(s)"
        )
    if not classes:
        raise DltoolsError(f"{tile_dir}: no class folders (expected {tile_dir}/<class>/*.jpg)")
    return classes


def read_tiles(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """(N, h, w, 3) uint8 tiles from image files (h, w of the first; others are resized to it).

    Grey tiles are repeated to RGB and bands after the third dropped. An unreadable or
    non-8-bit file is a DltoolsError naming it.
    """
    tiles = []
    for path in paths:
        pixels = _rgb8(read_image(path), Path(path))
        if tiles and pixels.shape != tiles[0].shape:
            height, width = tiles[0].shape[:2]
            pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
        tiles.append(pixels)
    if not tiles:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack(tiles)


def sample_per_class(
    classes: dict[str, list[Path]], n: int, seed: int = 0
) -> dict[str, list[Path]]:
    """``n`` random tiles of each class (all of a class that has fewer), in name order.

    Deterministic for a seed: classes draw in sorted order, each from its sorted tiles.
    """
    if n < 1:
        raise DltoolsError(f"the number of tiles per class must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    chosen = {}
    for name in sorted(classes):
        files = sorted(classes[name])
        picks = rng.choice(len(files), size=min(n, len(files)), replace=False)
        chosen[name] = [files[i] for i in np.sort(picks)]
    return chosen


def split_images_and_labels(files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """``(images, label rasters)`` among the image files of one folder: a file is a label
    raster when its name contains the name of another image there (see
    :func:`find_labelled_images`)."""
    labels = [p for p in files if _is_label_of_another(p, [q for q in files if q != p])]
    return [p for p in files if p not in labels], labels


# --- blending overlapping predictions -----------------------------------------------------


def covering_windows(length: int, size: int, step: int) -> np.ndarray:
    """Offsets ``0, step, 2 * step, ...`` of the windows of ``size`` that cover ``0..length``;
    the last one may run past the end."""
    if not 0 < step <= size:
        raise ValueError(f"need 0 < step <= size, got {step=}, {size=}")
    count = 1 if length <= size else -(-(length - size) // step) + 1
    return np.arange(count) * step


def blend_weights(length: int, size: int, step: int) -> np.ndarray:
    """(n, size) float32 weights of the windows of :func:`covering_windows` along one axis.

    Inside each overlap a window's weight is 0 over the quarter nearest its edge and rises
    linearly across the middle half; it is 1 elsewhere (and towards the ends of the axis).
    The weights sum to 1 at every position of ``0..length``; past the end they are 0.
    """
    starts = covering_windows(length, size, step)
    overlap = size - step
    pos = np.arange(size) + 0.5
    rise = np.clip((pos - overlap / 4) / (overlap / 2), 0, 1) if overlap else np.ones(size)
    weights = np.ones((len(starts), size))
    weights[1:] = np.minimum(weights[1:], rise)
    weights[:-1] = np.minimum(weights[:-1], rise[::-1])
    weights[starts[:, None] + np.arange(size) >= length] = 0
    total = np.zeros(starts[-1] + size)
    for start, weight in zip(starts, weights, strict=True):
        total[start : start + size] += weight
    for i, start in enumerate(starts):
        weights[i] /= np.where(total[start : start + size] > 0, total[start : start + size], 1)
    return weights.astype(np.float32)


def blend_blocks(
    shape: tuple[int, int],
    size: tuple[int, int],
    step: tuple[int, int],
    predict_row: Callable[[int, np.ndarray], Iterable[np.ndarray]],
    max_width: int | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Blend overlapping window predictions into a map of ``shape`` (H, W), block by block.

    Windows of ``size`` (rows, cols) lie ``step`` (rows, cols) apart (see
    :func:`covering_windows`) and are weighted by :func:`blend_weights` along both axes.
    ``predict_row(row, cols)`` yields the (size_r, size_c, K) predictions of the windows whose
    top-left corners are ``(row, col)`` for each col of ``cols``, in order.

    The map is made in column chunks of at most ``max_width`` columns (default: the whole
    width), each from top to bottom; yields final ``(row, col, (rows, cols, K) float32)``
    blocks. Each block is a view that is overwritten once the next one is requested: use (or
    copy) it first. Memory is one window row of one chunk, whatever the size of the map; the
    window straddling two chunks is predicted for both.
    """
    height, width = shape
    rows = covering_windows(height, size[0], step[0])
    cols = covering_windows(width, size[1], step[1])
    weight_r = blend_weights(height, size[0], step[0])
    weight_c = blend_weights(width, size[1], step[1])
    per_chunk = len(cols) if max_width is None else max(1, max_width // step[1])
    for first in range(0, len(cols), per_chunk):
        lo = int(cols[first])
        hi = int(cols[first + per_chunk]) if first + per_chunk < len(cols) else width
        used = np.flatnonzero((cols < hi) & (cols + size[1] > lo))
        band = None
        for i, row in enumerate(rows):
            for j, pred in zip(used, predict_row(int(row), cols[used]), strict=True):
                if band is None:
                    band = np.zeros((size[0], hi - lo, pred.shape[2]), np.float32)
                c0, c1 = max(int(cols[j]), lo), min(int(cols[j]) + size[1], hi)
                part = pred[:, c0 - cols[j] : c1 - cols[j]]
                weight = (
                    weight_r[i][:, None, None]
                    * weight_c[j][None, c0 - cols[j] : c1 - cols[j], None]
                )
                band[:, c0 - lo : c1 - lo] += part * weight
            done = min(step[0] if i < len(rows) - 1 else size[0], height - row)
            yield int(row), lo, band[:done]
            band[: size[0] - step[0]] = band[step[0] :]
            band[size[0] - step[0] :] = 0
