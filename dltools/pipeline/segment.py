"""Step 6: segment images with a tile classifier, refined to pixel labels (the hybrid method).

1. *Tiles.* The image is cut into a grid of TILE x TILE tiles (the last row and column are
   aligned with the image's edge, so every pixel lies in a tile) and every ``decim``-th tile
   (:func:`decimated`) is classified, in batches.
2. *Evidence.* Tiles whose top probability reaches ``prob_thres`` give their probabilities to
   the pixels they cover; the others are unknown.
3. *Refinement* (:mod:`dltools.engines.refine`) at working scale ``fct``: a dense CRF, a
   per-image MLP or random forest; or ``none``, the raw tile map (each pixel takes its tile's
   class, tiles without a prediction that of the nearest tile with one).

Images whose longer side exceeds ``block`` pixels are read, segmented and written window by
window (each with a margin of context that is then cut away), so a GeoTIFF of any size runs
in bounded memory; those get no ``.mat`` file (a MAT file could not hold them), a GeoTIFF
is the result (without georeferencing for a plain photo).

Array conventions: tile probabilities ``(ny, nx, K)`` float32, NaN rows for tiles not
classified; class maps ``(H, W)`` uint8, 0-based, :data:`dltools.engines.crf.NODATA` at nodata; tile
classes ``(ny, nx)`` uint8, class + 1 of the confident tiles, 0 = none.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import rasterio

from dltools.engines.crf import NODATA, CRFParams, confidence_map, known_evidence, working_shape
from dltools.engines.refine import DEFAULT_REFINER, REFINERS, refine
from dltools.engines.tiles import TileGrid, decimated, fill_unclassified, tile_classes, tile_grid
from dltools.engines.uncertainty import WindowTally, core_uncertainty
from dltools.errors import DltoolsError
from dltools.figures.display import to_display
from dltools.figures.panels import save_figure, segmentation_figure
from dltools.figures.thumbnails import Piece, Thumbnails, thumbnail_piece
from dltools.io.cog import cog_outputs, open_cog_writer, open_fraction_writer
from dltools.io.geo import (
    STREAM_CACHE_MB,
    Window,
    is_georeferenced,
    read_nodata_mask,
    read_profile,
    read_raster,
    write_window,
)
from dltools.io.labels import Classes
from dltools.io.results import NODATA as MAT_NODATA
from dltools.io.results import LabelResult, result_name, write_result
from dltools.io.vectors import write_window_ranking
from dltools.progress import Progress, quiet
from dltools.raster.bands import BandChoice
from dltools.raster.windows import core_slices, halo_windows
from dltools.scale.cache import Cached
from dltools.scale.executor import Executor, InProcess
from dltools.scale.journal import Journal, file_identity, run_units

if TYPE_CHECKING:
    from dltools.models.loader import TileModel

METHODS = (*REFINERS, "none")
BLOCK = 8192  # longer sides beyond this are processed in windows of this size
HALO = 256  # context around each window, in pixels (rounded up to whole tiles)
TILE_CHUNK = 1024  # tiles cut and classified at a time (batches of batch_size within)


@dataclass(frozen=True)
class SegmentParams:
    """The settings of step 6 (the original's positional arguments and the refiner).

    ``tile``: tile side in pixels; ``prob_thres``: tiles below this top probability are left
    unknown; ``prob``: the CRF's confidence in the tile labels (gt_prob); ``decim``: classify
    every decim-th tile; ``fct``: working scale of the refiner; ``refine``: one of
    :data:`METHODS`; ``crf``: the other CRF settings.
    """

    tile: int = 96
    prob_thres: float = 0.5
    prob: float = 0.5
    decim: int = 1
    fct: float = 0.25
    refine: str = DEFAULT_REFINER
    seed: int = 0
    batch_size: int = 64
    crf: CRFParams = field(default_factory=CRFParams)

    def __post_init__(self) -> None:
        problems = []
        if self.tile < 8:
            problems.append(f"TILE must be at least 8 pixels, got {self.tile}")
        if not 0 <= self.prob_thres <= 1:
            problems.append(f"PROB_THRES must lie in [0, 1], got {self.prob_thres}")
        if not 0 < self.prob < 1:
            problems.append(f"PROB must lie strictly between 0 and 1, got {self.prob}")
        if self.decim < 1:
            problems.append(f"DECIM must be at least 1, got {self.decim}")
        if not 0 < self.fct <= 1:
            problems.append(f"FCT must lie in (0, 1], got {self.fct}")
        if self.refine not in METHODS:
            problems.append(f"--refine must be one of {', '.join(METHODS)}, got {self.refine!r}")
        if self.batch_size < 1:
            problems.append(f"the batch size must be at least 1, got {self.batch_size}")
        if problems:
            raise DltoolsError("; ".join(problems))

    def crf_params(self) -> CRFParams:
        """The CRF settings with ``gt_prob`` = PROB."""
        return replace(self.crf, gt_prob=self.prob)


# --- tiles ---------------------------------------------------------------------------------


def tiles_at(rgb: np.ndarray, grid: TileGrid, picks: np.ndarray) -> np.ndarray:
    """(N, size, size, 3) uint8: the tiles at the (N, 2) ``picks`` (tile row, tile column) of
    ``grid``; an image smaller than a tile is padded by reflection."""
    size = grid.size
    pad = [(0, max(0, size - rgb.shape[0])), (0, max(0, size - rgb.shape[1])), (0, 0)]
    if any(p[1] for p in pad[:2]):
        rgb = np.pad(rgb, pad, mode="symmetric")
    tiles = np.empty((len(picks), size, size, 3), np.uint8)
    for n, (i, j) in enumerate(picks):
        r, c = grid.rows[i], grid.cols[j]
        tiles[n] = rgb[r : r + size, c : c + size, :3]
    return tiles


def classify_tiles(
    rgb: np.ndarray,
    grid: TileGrid,
    model: TileModel,
    decim: int = 1,
    batch_size: int = 64,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """(ny, nx, K) float32 probabilities of every ``decim``-th tile of ``rgb`` (H, W, 3) uint8,
    predicted in batches; NaN for the other tiles and for tiles less than half valid."""
    chosen = decimated(grid.shape, decim)
    if valid is not None and not valid.all():
        share = cv2.integral(valid.astype(np.uint8))
        r0, c0 = grid.rows[:, None], grid.cols[None, :]
        r1 = np.minimum(r0 + grid.size, valid.shape[0])
        c1 = np.minimum(c0 + grid.size, valid.shape[1])
        count = share[r1, c1] - share[r0, c1] - share[r1, c0] + share[r0, c0]
        chosen &= count * 2 >= (r1 - r0) * (c1 - c0)
    picks = np.argwhere(chosen)
    probabilities = np.full((*grid.shape, model.num_classes), np.nan, np.float32)
    for start in range(0, len(picks), TILE_CHUNK):
        part = picks[start : start + TILE_CHUNK]
        probabilities[part[:, 0], part[:, 1]] = model.predict(tiles_at(rgb, grid, part), batch_size)
    return probabilities


# --- one image in memory -------------------------------------------------------------------


@dataclass
class Segmentation:
    """The result of :func:`segment_image` (shapes in the module docstring)."""

    class_map: np.ndarray
    posteriors: np.ndarray  # (h, w, K) float32 at working scale
    tile_probs: np.ndarray
    grid: TileGrid
    prob_thres: float

    def tile_classes(self) -> np.ndarray:
        """(ny, nx) uint8 class + 1 of the confident tiles, 0 = none."""
        return tile_classes(self.tile_probs, self.prob_thres)

    def tile_confidence(self) -> np.ndarray:
        """(ny, nx) float32 top probability of each tile, 0 where not classified."""
        return np.nan_to_num(self.tile_probs, nan=0.0).max(axis=2)


def segment_image(
    image: np.ndarray,
    model: TileModel,
    params: SegmentParams = SegmentParams(),
    nodata: np.ndarray | None = None,
    workers: int | None = None,
    progress: Progress = quiet,
    bands: BandChoice | None = None,
) -> Segmentation:
    """Segment an (H, W, C) image of any dtype: ``bands`` (default: the model's) make the
    tile model's 8-bit RGB; the refiner uses every band.

    ``nodata``: (H, W) bool, True = no data (not classified, :data:`NODATA` in the map); tiles
    less than half valid are not classified.
    """
    image = image[..., None] if image.ndim == 2 else image
    shape = image.shape[:2]
    valid = None if nodata is None or not nodata.any() else ~nodata
    grid = tile_grid(*shape, params.tile)
    rgb = (model.bands if bands is None else bands).apply(image)
    probabilities = classify_tiles(rgb, grid, model, params.decim, params.batch_size, valid)
    small = working_shape(shape, params.fct)
    if not np.isfinite(probabilities).any():  # all nodata (a corner window of an orthomosaic)
        class_map = np.full(shape, NODATA, np.uint8)
        posteriors = np.zeros((*small, probabilities.shape[2]), np.float32)
    elif params.refine == "none":
        filled = fill_unclassified(probabilities)
        class_map = grid.expand(filled.argmax(axis=2).astype(np.uint8), shape, shape)
        if valid is not None:
            class_map[~valid] = NODATA
        posteriors = grid.expand(filled, small, shape)
    else:
        evidence = grid.expand(probabilities, small, shape)
        evidence[~(np.nan_to_num(evidence).max(axis=2) >= params.prob_thres)] = np.nan
        if not known_evidence(evidence).any():
            raise DltoolsError(
                f"no tile reached PROB_THRES {params.prob_thres} (the best reached "
                f"{np.nanmax(probabilities):.2f}): lower PROB_THRES"
            )
        class_map, posteriors = refine(
            image,
            evidence,
            params.refine,
            params.fct,
            params.crf_params(),
            nodata=None if valid is None else ~valid,
            seed=params.seed,
            workers=workers,
            progress=progress,
        )
    return Segmentation(class_map, posteriors, probabilities, grid, params.prob_thres)


# --- files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentPaths:
    """Every file step 6 writes for one image (``None``: not written)."""

    mat: Path | None
    figure: Path
    geotiff: Path | None = None
    probability: Path | None = None
    uncertainty: Path | None = None
    next_csv: Path | None = None
    next_geojson: Path | None = None

    def outputs(self) -> list[Path]:
        """The files, with the ``.qml`` styles of the GeoTIFFs."""
        rasters = [self.geotiff, self.probability, self.uncertainty]
        styled = [f for p in rasters if p for f in cog_outputs(p)]
        found = [p for p in (self.mat, self.figure) if p] + styled
        return found + [p for p in (self.next_csv, self.next_geojson) if p]


def needs_windows(shape: tuple[int, int], block: int = BLOCK) -> bool:
    """True if an image of ``shape`` (H, W) is processed window by window."""
    return max(shape) > block


def segment_paths(
    image_path: str | os.PathLike,
    tile: int,
    out_dir: str | os.PathLike | None = None,
    block: int = BLOCK,
    uncertainty: bool = False,
) -> SegmentPaths:
    """``<name>_ares_<tile>.mat`` / ``.png`` and, for a GeoTIFF, ``<name>_ares_<tile>.tif`` and
    ``<name>_ares_<tile>_prob.tif``, in ``out_dir`` or beside the image; with ``uncertainty``,
    ``<name>_ares_<tile>_uncertainty.png`` (``.tif`` for a GeoTIFF) and the ranked windows
    ``<name>_ares_<tile>_next.csv`` / ``.geojson``. An image processed in windows (longer side
    over ``block``) has no ``.mat``: its class map and probabilities go to the ``.tif`` files,
    without georeferencing if the image has none."""
    image_path = Path(image_path)
    folder = Path(out_dir) if out_dir is not None else image_path.parent
    base = folder / result_name(image_path, "ares", f"_{tile}")
    profile = read_profile(image_path)
    windowed = needs_windows((profile["height"], profile["width"]), block)
    raster = is_georeferenced(image_path) or windowed
    stem = base.with_suffix("")
    return SegmentPaths(
        mat=None if windowed else base,
        figure=base.with_suffix(".png"),
        geotiff=base.with_suffix(".tif") if raster else None,
        probability=base.with_name(f"{base.stem}_prob.tif") if raster else None,
        uncertainty=Path(f"{stem}_uncertainty{'.tif' if raster else '.png'}")
        if uncertainty
        else None,
        next_csv=Path(f"{stem}_next.csv") if uncertainty else None,
        next_geojson=Path(f"{stem}_next.geojson") if uncertainty else None,
    )


def blocks(height: int, width: int, block: int, tile: int) -> list[tuple[Window, Window]]:
    """``(core, outer)`` windows: cores of ``block`` px (whole tiles) tile the image; each outer
    window adds :data:`HALO` px (whole tiles) of context. One block if the image fits."""
    if not needs_windows((height, width), block):
        whole = Window(0, 0, width, height)
        return [(whole, whole)]
    return halo_windows(height, width, max(tile, block // tile * tile), -(-HALO // tile) * tile)


@dataclass
class SegmentSummary:
    """What :func:`segment_file` did: tile counts, class fractions, seconds, windows."""

    tiles: int
    classified: int
    confident: int
    fractions: dict[str, float]
    seconds: float
    windows: int


@dataclass(frozen=True)
class WindowTask:
    """One unit of :func:`segment_file`: segment the ``outer`` window of the image (the whole
    image if ``whole``) and keep its ``core``. ``model``: the tile model, or a
    :class:`dltools.scale.cache.Cached` reference that loads it once per process (a Dask
    worker); ``thumb_factor``: scale of the figure's thumbnails; ``probability``: also return
    the probability of the chosen class; ``mat``: also return the ``.mat`` result;
    ``image_shape``: (H, W) of the whole image; ``uncertainty``: also return the core's
    uncertainty of this measure and its window tally (see :mod:`dltools.engines.uncertainty`;
    None: not)."""

    image_path: Path
    core: Window
    outer: Window
    whole: bool
    model: TileModel | Cached
    class_names: tuple[str, ...]
    params: SegmentParams
    workers: int | None
    bands: BandChoice | None
    thumb_factor: float
    probability: bool
    mat: bool
    image_shape: tuple[int, int]  # (H, W) of the whole image
    progress: Progress = quiet
    uncertainty: str | None = None


@dataclass
class WindowResult:
    """What :func:`segment_window` returns for the core window ``core``: ``values`` (h, w)
    uint8 class + 1 (0 = nodata), ``probability`` (h, w) float32 (NaN = nodata) or None,
    the thumbnail ``pieces`` (name -> :data:`Piece`), ``counts`` (K,) int64 pixels per class,
    ``tiles`` (tiles, classified, confident) of the core, ``result`` (the ``.mat``) or
    None, and ``uncertainty`` (h, w) float32 (NaN = nodata) with its
    :class:`~dltools.engines.uncertainty.WindowTally`, or None."""

    core: Window
    values: np.ndarray
    probability: np.ndarray | None
    pieces: dict[str, Piece | None]
    counts: np.ndarray
    tiles: tuple[int, int, int]
    result: LabelResult | None
    uncertainty: np.ndarray | None = None
    tally: WindowTally | None = None


def segment_window(task: WindowTask) -> WindowResult:
    """Segment one window of an image file (see :class:`WindowTask`); reads only that window."""
    model = task.model() if isinstance(task.model, Cached) else task.model
    core, outer = task.core, task.outer
    window = None if task.whole else outer
    image = read_raster(task.image_path, window)
    nodata = read_nodata_mask(task.image_path, window)  # all False: segment_image sees none
    seg = segment_image(image, model, task.params, nodata, task.workers, task.progress, task.bands)
    inner = core_slices(core, outer)
    shape = image.shape[:2]
    class_map = seg.class_map[inner]
    tile_map = seg.grid.expand(seg.tile_classes(), shape, shape)[inner]
    confidence = seg.grid.expand(seg.tile_confidence(), shape, shape)[inner]
    valid = class_map != NODATA
    counts = np.bincount(class_map.ravel(), minlength=NODATA + 1)[: len(task.class_names)]
    inside = _tiles_inside(seg.grid, inner)
    tiles = (
        int(inside.sum()),
        int((np.isfinite(seg.tile_probs).all(axis=2) & inside).sum()),
        int(((seg.tile_classes() > 0) & inside).sum()),
    )
    values = np.where(valid, class_map + 1, 0).astype(np.uint8)
    probability = None
    if task.probability:
        prob = confidence_map(seg.posteriors, shape)[inner]
        probability = np.where(valid, prob, np.nan).astype(np.float32)
    f = task.thumb_factor
    pieces = {
        "image": thumbnail_piece(f, core, to_display(image[inner]), labels=False),
        "tiles": thumbnail_piece(f, core, tile_map, labels=True),
        "confidence": thumbnail_piece(f, core, confidence, labels=True),
        "class": thumbnail_piece(f, core, class_map, labels=True),
    }
    result = None
    if task.mat:
        result_class = np.where(valid, class_map.astype(np.int16), MAT_NODATA)
        result = LabelResult(result_class, list(task.class_names), tile_map, seg.posteriors)
    found = WindowResult(core, values, probability, pieces, counts, tiles, result)
    if task.uncertainty is not None:
        found.uncertainty, found.tally = core_uncertainty(
            seg.posteriors, core, outer, valid, task.uncertainty, task.image_shape
        )
    return found


def segment_file(
    image_path: str | os.PathLike,
    model: TileModel | Cached,
    class_names: list[str],
    colors: np.ndarray,
    params: SegmentParams,
    paths: SegmentPaths,
    block: int = BLOCK,
    workers: int | None = None,
    progress: Progress = quiet,
    bands: BandChoice | None = None,
    executor: Executor | None = None,
    resume: bool = False,
    uncertainty: str = "margin",
) -> SegmentSummary:
    """Segment one image file and write ``paths`` (each file whole or not at all).

    ``bands``: which of its bands feed the model (default: the model's, see
    :func:`dltools.io.images.inference_bands`). Images with a side over ``block`` px are
    processed window by window (see the module docstring); ``paths.mat`` must then be None.
    ``executor`` runs the windows (default: here, one after the other; on a Dask cluster
    ``model`` must be a :class:`~dltools.scale.cache.Cached` reference): at most a fixed
    number of windows are in flight, and each is written as it comes back, so the memory of
    this process stays bounded whatever the raster's size. The files are the same either way.

    Windows are kept as they finish (see :mod:`dltools.scale.journal`): with ``resume``, the
    windows an interrupted run finished for the same inputs are read back, not segmented again.
    ``uncertainty``: the measure of ``paths.uncertainty`` (see
    :mod:`dltools.engines.uncertainty`), from the refined posteriors.
    """
    start = time.perf_counter()
    image_path = Path(image_path)
    profile = read_profile(image_path)
    height, width = profile["height"], profile["width"]
    windows = blocks(height, width, block, params.tile)
    whole = len(windows) == 1
    if paths.mat is not None and not whole:
        raise DltoolsError(f"{image_path} is processed in windows: it cannot have a .mat output")
    executor = InProcess() if executor is None else executor
    thumbs = Thumbnails((height, width))
    counts = np.zeros(len(class_names), np.int64)  # pixels of each class
    tiles = np.zeros(3, np.int64)  # tiles, classified, confident (tiles of the windows' cores)
    tasks = [
        WindowTask(
            image_path,
            core,
            outer,
            whole,
            model,
            tuple(class_names),
            params,
            workers,
            bands,
            thumbs.factor,
            paths.probability is not None,
            paths.mat is not None,
            (height, width),
            quiet if executor.remote else progress,
            None if paths.uncertainty is None else uncertainty,
        )
        for core, outer in windows
    ]
    like = profile if paths.geotiff else None
    tally = WindowTally((height, width), len(class_names))
    with contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=STREAM_CACHE_MB))  # memory stays bounded
        geotiff = probability = None
        if paths.geotiff is not None:
            geotiff = stack.enter_context(
                open_cog_writer(paths.geotiff, profile, "uint8", 0, Classes(class_names, colors))
            )
        if paths.probability is not None:
            probability = stack.enter_context(
                open_cog_writer(paths.probability, profile, "float32", float("nan"))
            )
        if paths.uncertainty is not None:
            put = stack.enter_context(
                open_fraction_writer(paths.uncertainty, like, (height, width))
            )
        journal = None
        if not whole:
            journal = Journal(paths.outputs()[0], _window_inputs(tasks[0], block), resume)
        done = run_units(executor, segment_window, tasks, journal)
        if executor.remote:
            done = progress(done, total=len(tasks), desc=image_path.name, unit="window")
        for res in done:
            counts += res.counts
            tiles += res.tiles
            if geotiff is not None:
                write_window(geotiff, res.values, res.core)
            if probability is not None:
                write_window(probability, res.probability, res.core)
            for name, piece in res.pieces.items():
                thumbs.paste(name, piece)
            if res.result is not None:
                write_result(paths.mat, res.result)
            if res.uncertainty is not None:
                put(res.uncertainty, res.core)
                tally.merge(res.tally)
            del res
        panels = (thumbs.arrays[name] for name in ("image", "tiles", "confidence", "class"))
        title = f"{image_path.name}: tiles of {params.tile} px, refined by {params.refine}"
        fig = segmentation_figure(*panels, class_names, colors, title=title)
        save_figure(fig, paths.figure)
        if paths.uncertainty is not None:
            ranked = tally.ranked()
            write_window_ranking(ranked, class_names, like, paths.next_csv, paths.next_geojson)
    if journal is not None:
        journal.remove()
    labelled = max(int(counts.sum()), 1)
    return SegmentSummary(
        tiles=int(tiles[0]),
        classified=int(tiles[1]),
        confident=int(tiles[2]),
        fractions={name: counts[k] / labelled for k, name in enumerate(class_names)},
        seconds=time.perf_counter() - start,
        windows=len(windows),
    )


def _window_inputs(task: WindowTask, block: int) -> dict:
    """What the windows of ``task``'s image depend on (see :mod:`dltools.scale.journal`)."""
    model = task.model
    if isinstance(model, Cached):
        model = [file_identity(k) if isinstance(k, str) else k for k in model.key]
    else:
        model = repr(model)
    return {
        "image": file_identity(task.image_path),
        "model": model,
        "classes": task.class_names,
        "params": asdict(task.params),
        "bands": repr(task.bands),
        "block": block,
        "outputs": [task.thumb_factor, task.probability, task.uncertainty],
    }


def _tiles_inside(grid: TileGrid, inner: tuple[slice, slice]) -> np.ndarray:
    """(ny, nx) bool: tiles whose top-left corner lies in the ``inner`` (rows, cols) slices."""
    rows = (grid.rows >= inner[0].start) & (grid.rows < inner[0].stop)
    cols = (grid.cols >= inner[1].start) & (grid.cols < inner[1].stop)
    return rows[:, None] & cols[None, :]
