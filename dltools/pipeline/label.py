"""Step 2: a dense label image from strokes, and the files that hold it.

Array conventions: ``strokes`` (H, W) uint8, 0 = no stroke, k = class k (1-based);
``class_map`` (H, W) uint8, 0-based classes, :data:`dltools.engines.crf.NODATA` where the
image has nodata (-1 in the ``.mat`` file's ``class``);
``posteriors`` (h, w, K) float32 CRF posteriors at the working scale (the ``.mat``'s ``preds``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import rasterio

from dltools.engines.crf import (
    NODATA,
    CRFParams,
    ImageContext,
    StrokeReader,
    confidence_map,
    crf_reach,
    label_from_strokes,
    scaled_params,
    shrink_strokes,
    stroke_context,
)
from dltools.engines.polygons import polygonize, to_map
from dltools.engines.stroke_check import StrokeCheck, check_strokes
from dltools.engines.uncertainty import (
    WindowTally,
    core_uncertainty,
    next_windows,
    uncertainty_map,
    upsample,
)
from dltools.errors import DltoolsError
from dltools.figures.display import to_display
from dltools.figures.panels import groundtruth_figure, save_figure, thicken_strokes
from dltools.figures.thumbnails import Piece, Thumbnails, thumbnail_piece
from dltools.gui.painter import paint_strokes
from dltools.io.cog import (
    cog_outputs,
    open_cog_writer,
    open_fraction_writer,
    write_cog,
    write_fraction_raster,
)
from dltools.io.geo import (
    STREAM_CACHE_MB,
    Window,
    is_georeferenced,
    read_nodata_mask,
    read_profile,
    read_raster,
    write_window,
)
from dltools.io.images import read_image, write_image
from dltools.io.labels import Classes
from dltools.io.outputs import atomic_path, ensure_new
from dltools.io.results import NODATA as MAT_NODATA
from dltools.io.results import LabelResult, write_result
from dltools.io.strokes import (
    StrokeSource,
    open_strokes,
    read_strokes,
    stroke_dtype,
    write_stroke_layer,
    write_stroke_polygons,
)
from dltools.io.vectors import write_window_ranking
from dltools.progress import Progress, quiet
from dltools.raster.windows import core_slices, halo_windows
from dltools.scale.executor import Executor, InProcess
from dltools.scale.journal import Journal, file_identity, run_units

CHECK_SCALE = 0.2  # the stroke check's working scale at most (six CRF runs instead of one)
CHECK_PIXELS = 4_000_000  # ... and the most pixels it shrinks an image labelled in windows to
BLOCK = 8192  # georeferenced images with a longer side beyond this are labelled in windows
MIN_BLOCK = 64  # smaller windows would be mostly context
ORDERS = ("rows", "uncertain")  # the orders in which the painter visits its windows


@dataclass(frozen=True)
class GroundTruthPaths:
    """Every file step 2 writes for one image (``None``: not written for this run)."""

    strokes: Path  # <name>_doodles.png: the painted strokes, saved as they are drawn
    mat: Path | None  # None for an image labelled in windows, as label_png
    figure: Path
    label_png: Path | None
    report: Path
    geotiff: Path | None = None
    confidence: Path | None = None
    uncertainty: Path | None = None
    next_csv: Path | None = None
    next_geojson: Path | None = None

    def outputs(self) -> list[Path]:
        """The result files (not the strokes, which are the input being painted), with the
        ``.qml`` styles of the GeoTIFFs."""
        paths = [p for p in (self.mat, self.figure, self.label_png, self.report) if p]
        rasters = (self.geotiff, self.confidence, self.uncertainty)
        paths += [f for raster in rasters if raster is not None for f in cog_outputs(raster)]
        return paths + [p for p in (self.next_csv, self.next_geojson) if p is not None]


def groundtruth_paths(
    image_path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    geotiff: bool = False,
    confidence: bool = False,
    uncertainty: bool = False,
    windowed: bool = False,
) -> GroundTruthPaths:
    """Output names for ``image_path``: ``<name>_mres.mat`` etc. in ``out_dir`` or beside it;
    with ``uncertainty``, ``<name>_uncertainty.tif`` (``.png`` for plain images) and the
    ranked windows ``<name>_next.csv`` / ``<name>_next.geojson``. An image labelled in
    windows (``windowed``, see :func:`in_windows`) gets no ``.mat`` and no label PNG: the
    GeoTIFF is the result (without georeferencing for a plain photo), its rasters are
    ``.tif``."""
    image_path = Path(image_path)
    folder = Path(out_dir) if out_dir is not None else image_path.parent
    base = folder / image_path.stem
    geotiff = geotiff or windowed
    confidence_suffix = ".tif" if geotiff else ".png"
    return GroundTruthPaths(
        strokes=Path(f"{base}_doodles.png"),
        mat=None if windowed else Path(f"{base}_mres.mat"),
        figure=Path(f"{base}_mres.png"),
        label_png=None if windowed else Path(f"{base}_mres_label.png"),
        report=Path(f"{base}_report.txt"),
        geotiff=Path(f"{base}_mres_geo.tif") if geotiff else None,
        confidence=Path(f"{base}_mres_confidence{confidence_suffix}") if confidence else None,
        uncertainty=Path(f"{base}_uncertainty{confidence_suffix}") if uncertainty else None,
        next_csv=Path(f"{base}_next.csv") if uncertainty else None,
        next_geojson=Path(f"{base}_next.geojson") if uncertainty else None,
    )


def class_counts(class_map: np.ndarray, n_classes: int) -> np.ndarray:
    """(K + 1,) int64: the pixels of each class, then the nodata pixels, of a (H, W) class map."""
    counts = np.bincount(class_map.ravel(), minlength=NODATA + 1)
    return np.append(counts[:n_classes], counts[NODATA]).astype(np.int64)


@dataclass
class LabelSummary:
    """What the report of one labelled image says: its (H, W) ``shape``, the (K + 1,)
    ``counts`` of :func:`class_counts`, the working ``scale`` and CRF ``params``, the
    ``seconds`` spent ("painting", "computing") and the stroke ``check``, if any."""

    image_path: Path
    shape: tuple[int, int]
    counts: np.ndarray
    scale: float
    params: CRFParams
    seconds: dict[str, float]
    check: StrokeCheck | None = None
    windows: int = 1


@dataclass
class GroundTruth:
    """One labelled image, ready to be written."""

    image_path: Path
    image: np.ndarray  # (H, W, C)
    strokes: np.ndarray  # (H, W) uint8
    class_map: np.ndarray  # (H, W) uint8
    posteriors: np.ndarray  # (h, w, K) float32
    class_names: Sequence[str]
    colors: np.ndarray  # (K, 3) uint8
    params: CRFParams
    scale: float
    profile: dict | None = None  # rasterio profile of a GeoTIFF input
    seconds: dict[str, float] = field(default_factory=dict)  # "painting", "computing"
    check: StrokeCheck | None = None  # the cross-validation over the strokes, when asked for
    uncertainty: str = "margin"  # the measure of the uncertainty raster (see engines.uncertainty)


def report_text(summary: LabelSummary, class_names: Sequence[str]) -> str:
    """The human-readable summary written to ``<name>_report.txt``."""
    height, width = summary.shape
    windows = f", labelled in {summary.windows} windows" if summary.windows > 1 else ""
    lines = [
        f"image: {summary.image_path}",
        f"size: {width} x {height} pixels ({height * width} pixels, {summary.counts[-1]} "
        f"nodata{windows})",
        f"working scale: {summary.scale}",
        "CRF: " + ", ".join(f"{k}={v}" for k, v in vars(summary.params).items()),
        "class fractions (of valid pixels):",
    ]
    fractions = summary.counts[:-1] / max(int(summary.counts[:-1].sum()), 1)
    width_names = max(len(name) for name in class_names)
    lines += [
        f"  {name:<{width_names}}  {fraction:.4f}"
        for name, fraction in zip(class_names, fractions, strict=True)
    ]
    for activity in ("painting", "computing"):
        lines.append(f"minutes {activity}: {summary.seconds.get(activity, 0.0) / 60:.2f}")
    if summary.check is not None:
        lines += summary.check.lines(class_names)
    return "\n".join(lines) + "\n"


def write_groundtruth(gt: GroundTruth, paths: GroundTruthPaths) -> None:
    """Write every output of ``paths`` for ``gt``; each file appears whole or not at all."""
    n_classes = len(gt.class_names)
    valid = gt.class_map != NODATA
    class_index = gt.class_map.astype(np.int16)
    class_index[~valid] = MAT_NODATA
    write_result(
        paths.mat,
        LabelResult(
            class_map=class_index,
            labels=list(gt.class_names),
            sparse=gt.strokes,
            preds=gt.posteriors.astype(np.float16),
        ),
    )
    label_values = np.where(valid, gt.class_map.astype(np.uint16) + 1, 0)
    label_values = label_values.astype(np.uint8 if n_classes < 255 else np.uint16)
    write_image(paths.label_png, label_values)
    fig = groundtruth_figure(
        gt.image, gt.strokes, gt.class_map, gt.class_names, gt.colors, title=gt.image_path.name
    )
    save_figure(fig, paths.figure)
    if paths.geotiff is not None:
        if gt.profile is None:
            raise DltoolsError(f"{gt.image_path} is not georeferenced: no GeoTIFF output possible")
        classes = Classes(list(gt.class_names), gt.colors)
        write_cog(paths.geotiff, label_values, gt.profile, nodata=0, classes=classes)
    if paths.confidence is not None:
        confidence = confidence_map(gt.posteriors, gt.class_map.shape)
        confidence[~valid] = np.nan
        write_fraction_raster(paths.confidence, confidence, gt.profile)
    if paths.uncertainty is not None:  # where to paint next: the uncertainty raster (a COG,
        # or an 8-bit PNG, 255 = a tie) and its windows ranked, most uncertain first
        values, ranked = next_windows(gt.posteriors, valid, gt.uncertainty)
        write_fraction_raster(paths.uncertainty, values, gt.profile)
        write_window_ranking(ranked, gt.class_names, gt.profile, paths.next_csv, paths.next_geojson)
    summary = LabelSummary(
        gt.image_path,
        gt.class_map.shape,
        class_counts(gt.class_map, n_classes),
        gt.scale,
        gt.params,
        gt.seconds,
        gt.check,
    )
    with atomic_path(paths.report) as tmp:
        tmp.write_text(report_text(summary, gt.class_names))


@dataclass(frozen=True)
class LabelOptions:
    """How step 2 runs: where outputs go (``out_dir``, default beside the image), the stroke
    file to replay (``strokes``: label image, ``_mres.mat``, GeoJSON with ``class_field``),
    whether to ``paint`` (in ``window`` x ``window`` displayed pixels, brush radius ``brush``),
    whether to write the ``confidence`` raster, whether the image must be georeferenced, where
    to write the strokes as a GeoPackage layer (``save_strokes``, georeferenced images only),
    CRF ``workers`` (default: all cores), whether to replace existing outputs (``force``), and
    ``check``: the folds of a cross-validation over the strokes (0: none; see
    :mod:`dltools.engines.stroke_check`), run at the working scale, at most
    :data:`CHECK_SCALE`; ``uncertainty``: the measure of the uncertainty raster and the ranked
    windows of "where to paint next" (None: not written); ``order``: the painter visits its
    windows row by row (``"rows"``) or most uncertain first (``"uncertain"``, from the CRF
    posteriors of the strokes so far; its ``r`` key re-ranks); ``block``: georeferenced
    images whose longer side is over this many pixels are labelled in windows (see
    :func:`in_windows`); ``resume``: read back the windows an interrupted run finished."""

    out_dir: str | os.PathLike | None = None
    strokes: str | os.PathLike | None = None
    class_field: str = "class"
    paint: bool = False
    window: int = 500
    brush: int = 5
    confidence: bool = False
    georeferenced_only: bool = False
    save_strokes: str | os.PathLike | None = None
    workers: int | None = None
    force: bool = False
    check: int = 0
    uncertainty: str | None = None
    order: str = "rows"
    block: int = BLOCK
    resume: bool = False


def label_image(
    image_path: str | os.PathLike,
    classes: Classes,
    params: CRFParams,
    scale: float,
    options: LabelOptions = LabelOptions(),
    progress: Progress = quiet,
    also_new: Sequence[Path] = (),
    log: Callable[[str], None] = lambda _: None,
    executor: Executor | None = None,
) -> GroundTruthPaths:
    """Step 2 for one image: strokes (painted, or replayed from ``options.strokes``) -> a dense
    CRF label image at working ``scale`` (0 < scale <= 1), written as :class:`GroundTruthPaths`.

    Every input is checked and every output conflict (``also_new``: outputs the caller writes
    afterwards) found before any window opens or any file is written. The stroke check's report
    goes to ``log`` line by line (and to the report file). Returns the paths written.
    An image that :func:`in_windows` is labelled by :func:`label_in_windows`, whose windows
    ``executor`` runs (default: here, one after the other).
    """
    if not 0 < scale <= 1:
        raise DltoolsError(f"-s must be in (0, 1], got {scale}")
    if options.order not in ORDERS:
        raise DltoolsError(f"--order must be one of {', '.join(ORDERS)}, got {options.order!r}")
    if options.block < MIN_BLOCK:
        raise DltoolsError(f"--block must be at least {MIN_BLOCK} px, got {options.block}")
    image_path = Path(image_path)
    georeferenced = is_georeferenced(image_path)
    if options.georeferenced_only and not georeferenced:
        raise DltoolsError(
            f"{image_path} has no georeferencing: use label_1image_crf.py for plain images"
        )
    profile = read_profile(image_path) if georeferenced else None
    windowed = in_windows(image_path, options)
    paths = groundtruth_paths(
        image_path,
        options.out_dir,
        georeferenced,
        options.confidence,
        options.uncertainty is not None,
        windowed,
    )
    if options.save_strokes and profile is None:
        raise DltoolsError(f"--save-strokes: {image_path} is not georeferenced")
    saved = [Path(options.save_strokes)] if options.save_strokes else []
    ensure_new([*paths.outputs(), *saved, *also_new], force=options.force)
    if windowed:
        painting = 0.0
        if not options.strokes or options.paint:
            start = time.perf_counter()
            painted = _paint_overview(image_path, classes, params, scale, options, paths, progress)
            options = replace(options, strokes=painted, paint=False)
            painting = time.perf_counter() - start
        label_in_windows(
            image_path, classes, params, scale, options, paths, progress, executor, log, painting
        )
        return paths
    image = read_image(image_path)
    has_nodata = profile and profile.get("nodata") is not None
    nodata = read_nodata_mask(image_path) if has_nodata else None
    strokes = (
        read_strokes(
            options.strokes,
            image.shape[:2],
            classes.names,
            georef=profile,
            class_field=options.class_field,
        )
        if options.strokes
        else None
    )
    seconds = {"painting": 0.0}
    if strokes is None or options.paint:
        start = time.perf_counter()
        strokes = _paint(image, strokes, nodata, classes, params, scale, options, paths)
        seconds["painting"] = time.perf_counter() - start
    if not strokes.any():
        raise DltoolsError("no strokes: paint at least one class (nothing was written)")
    if options.save_strokes:
        write_stroke_layer(
            options.save_strokes, strokes, classes.names, profile, options.class_field
        )
    start = time.perf_counter()
    class_map, posteriors = label_from_strokes(
        image,
        strokes,
        len(classes.names),
        scale=scale,
        params=params,
        nodata=nodata,
        workers=options.workers,
        progress=progress,
    )
    seconds["computing"] = time.perf_counter() - start
    check = None
    if options.check:
        check = check_strokes(
            image,
            strokes,
            len(classes.names),
            folds=options.check,
            scale=min(scale, CHECK_SCALE),
            params=params,
            nodata=nodata,
            workers=options.workers or os.cpu_count() or 1,
            progress=progress,
        )
        for line in check.lines(classes.names):
            log(line)
    gt = GroundTruth(
        image_path=image_path,
        image=image,
        strokes=strokes,
        class_map=class_map,
        posteriors=posteriors,
        class_names=classes.names,
        colors=classes.colors,
        params=params,
        scale=scale,
        profile=profile,
        seconds=seconds,
        check=check,
        uncertainty=options.uncertainty or "margin",
    )
    write_groundtruth(gt, paths)
    return paths


def _paint(
    image: np.ndarray,
    initial: np.ndarray | None,
    nodata: np.ndarray | None,
    classes: Classes,
    params: CRFParams,
    scale: float,
    options: LabelOptions,
    paths: GroundTruthPaths,
) -> np.ndarray:
    """Open the painter on ``image`` (H, W, C), shown and labelled (for ``--order uncertain``)
    at ``scale``, from the ``initial`` (H, W) strokes, saving them to ``paths.strokes`` (which
    must be new unless painting resumes from it). ``nodata``: (H, W) bool or None. Returns the
    (H, W) stroke raster."""
    resuming = options.strokes and Path(options.strokes).resolve() == paths.strokes.resolve()
    if not resuming:
        ensure_new([paths.strokes], force=options.force)

    def uncertainty(painted: np.ndarray) -> np.ndarray | None:
        if not painted.any():
            return None
        _, posteriors = label_from_strokes(
            image, painted, len(classes.names), scale, params, nodata, options.workers
        )
        return upsample(uncertainty_map(posteriors, options.uncertainty or "margin"), shape)

    shape = image.shape[:2]
    return paint_strokes(
        image,
        classes.names,
        classes.colors,
        scale=scale,
        window=options.window,
        initial=initial,
        autosave_path=paths.strokes,
        brush=options.brush,
        uncertainty=uncertainty if options.order == "uncertain" else None,
    )


def _paint_overview(
    image_path: Path,
    classes: Classes,
    params: CRFParams,
    scale: float,
    options: LabelOptions,
    paths: GroundTruthPaths,
    progress: Progress = quiet,
) -> Path:
    """Paint an image larger than ``options.block`` on its overview: the image (and the
    strokes of ``options.strokes`` when resuming) shrunk by whole cells to a longer side of at
    most ``options.block`` (:func:`dltools.engines.crf.shrink_strokes`, read window by
    window). The painter shows the overview at ``scale`` times the cell (at most 1), so it
    looks as the whole image would at ``scale``, and saves the strokes at the overview's size
    to ``paths.strokes``, which is returned for :func:`label_in_windows` to replay (each
    overview pixel marks its cell)."""
    _, read, layout = _stroke_reader(image_path, classes, options)
    cell = math.ceil(max(layout[0]) / options.block)
    overview, valid, initial = shrink_strokes(read, layout, cell, progress)
    shown = min(1.0, scale * cell)  # the overview's own working scale
    painted = _paint(
        overview,
        initial.astype(stroke_dtype(len(classes.names))) if initial.any() else None,
        ~valid,
        classes,
        scaled_params(params, shown / (scale * cell)),
        shown,
        options,
        paths,
    )
    if not painted.any():
        raise DltoolsError("no strokes: paint at least one class (nothing was written)")
    return paths.strokes


# ----------------------------------------------------------------------------- in windows


def _stroke_reader(
    image_path: Path, classes: Classes, options: LabelOptions
) -> tuple[StrokeSource | None, StrokeReader, tuple[tuple[int, int], int, np.dtype]]:
    """The strokes of ``options.strokes`` opened for ``image_path`` (None without), a reader
    of its windows (window -> the image's (h, w, C) pixels, (h, w) bool validity and (h, w)
    strokes, all 0 without strokes) and its layout ((H, W), band count, dtype)."""
    profile = read_profile(image_path)
    shape = (profile["height"], profile["width"])
    strokes = None
    if options.strokes:
        strokes = open_strokes(
            options.strokes, shape, classes.names, georef=profile, class_field=options.class_field
        )

    def read(window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shape = (window.height, window.width)
        marks = np.zeros(shape, np.uint8) if strokes is None else strokes.read(window)
        return read_raster(image_path, window), ~read_nodata_mask(image_path, window), marks

    return strokes, read, (shape, profile["count"], np.dtype(profile["dtype"]))


def in_windows(image_path: str | os.PathLike, options: LabelOptions) -> bool:
    """True if :func:`label_image` labels ``image_path`` window by window: an image whose
    longer side is over ``options.block`` pixels, with strokes replayed from a file or painted
    on its overview (see :func:`_paint_overview`)."""
    profile = read_profile(image_path)
    return max(profile["height"], profile["width"]) > options.block


@dataclass(frozen=True)
class LabelWindow:
    """One unit of :func:`label_in_windows`: label the ``outer`` window of an image of
    (H, W) = ``image_shape`` from its strokes (``strokes``) with the CRF's ``params`` at
    working ``scale`` in ``context`` (the coarse pass; its origin is set per window), and
    keep the ``core``. ``workers``: CRF processes; ``thumb_factor``: scale of the figure's
    thumbnails; ``confidence``: also return the largest posterior; ``uncertainty``: also
    return the uncertainty of this measure and its window tally (None: not)."""

    image_path: Path
    strokes: StrokeSource
    n_classes: int
    params: CRFParams
    scale: float
    context: ImageContext
    core: Window
    outer: Window
    image_shape: tuple[int, int]
    workers: int | None
    thumb_factor: float
    confidence: bool
    uncertainty: str | None = None


@dataclass
class WindowLabels:
    """What :func:`label_window` returns for the ``core`` window: ``values`` (h, w) class + 1
    (0 = nodata), the (K + 1,) ``counts`` of :func:`class_counts`, the thumbnail ``pieces``
    (name -> :data:`~dltools.figures.thumbnails.Piece`), and (h, w) float32 ``confidence``
    and ``uncertainty`` (NaN = nodata) with its tally, or None when not asked for."""

    core: Window
    values: np.ndarray
    counts: np.ndarray
    pieces: dict[str, Piece | None]
    confidence: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    tally: WindowTally | None = None


def label_window(unit: LabelWindow) -> WindowLabels:
    """Label one :class:`LabelWindow`; reads only its outer window."""
    core, outer = unit.core, unit.outer
    image = read_raster(unit.image_path, outer)
    nodata = read_nodata_mask(unit.image_path, outer)
    strokes = unit.strokes.read(outer)
    origin = (round(outer.row_off * unit.scale), round(outer.col_off * unit.scale))
    class_map, posteriors = label_from_strokes(
        image,
        strokes,
        unit.n_classes,
        unit.scale,
        unit.params,
        nodata if nodata.any() else None,
        unit.workers,
        context=replace(unit.context, origin=origin),
    )
    inner = core_slices(core, outer)
    kept = class_map[inner]
    valid = kept != NODATA
    values = np.where(valid, kept.astype(np.uint16) + 1, 0).astype(stroke_dtype(unit.n_classes))
    f = unit.thumb_factor
    thick = thicken_strokes(strokes[inner], max(1, round(max(kept.shape) * f)))
    pieces = {
        "image": thumbnail_piece(f, core, to_display(image[inner]), labels=False),
        "strokes": thumbnail_piece(f, core, thick.astype(strokes.dtype), labels=True),
        "class": thumbnail_piece(f, core, kept, labels=True),
    }
    found = WindowLabels(core, values, class_counts(kept, unit.n_classes), pieces)
    if unit.confidence:
        found.confidence = confidence_map(posteriors, image.shape[:2])[inner]
        found.confidence[~valid] = np.nan
    if unit.uncertainty is not None:
        found.uncertainty, found.tally = core_uncertainty(
            posteriors, core, outer, valid, unit.uncertainty, unit.image_shape
        )
    return found


def label_in_windows(
    image_path: Path,
    classes: Classes,
    params: CRFParams,
    scale: float,
    options: LabelOptions,
    paths: GroundTruthPaths,
    progress: Progress = quiet,
    executor: Executor | None = None,
    log: Callable[[str], None] = lambda _: None,
    painting: float = 0.0,
) -> LabelSummary:
    """Label an image too large to hold whole, window by window (``painting``: the seconds
    spent painting its strokes, for the report).

    1. *Coarse pass.* The image and its strokes are read in windows and shrunk by a whole
       factor (:func:`dltools.engines.crf.shrink_strokes`) to at most half a megapixel, and
       one CRF runs on them (:func:`dltools.engines.crf.stroke_context`), as
       :func:`dltools.engines.crf.tiled_crf` does on a whole image.
    2. *Windows.* The image is cut into cores of ``options.block`` px, each read with
       :func:`dltools.engines.crf.crf_reach` px of context and labelled as
       :func:`dltools.engines.crf.label_from_strokes` labels an image, with the coarse
       pass as its prior and the whole image's lattice coordinates and band scaling
       (:class:`LabelWindow`). ``executor`` runs them (a Dask cluster, or here); at most a
       fixed number are in flight, and each core is written as it comes back.
    3. The label GeoTIFF, the confidence and uncertainty rasters stream to their COGs; the
       figure is drawn from thumbnails; no ``.mat`` and no label PNG are written.

    ``options.save_strokes`` is polygonised window by window
    (:func:`dltools.engines.polygons.polygonize`: the polygons of the whole raster);
    ``options.check`` runs on the image and strokes shrunk to the check's working scale (at
    most :data:`CHECK_SCALE`) or to :data:`CHECK_PIXELS`, whichever is smaller, with its
    lines sent to ``log``.

    Finished windows are kept (see :mod:`dltools.scale.journal`): with ``options.resume``
    those of an interrupted run for the same inputs are read back, not labelled again.
    """
    start = time.perf_counter()
    executor = InProcess() if executor is None else executor
    profile = read_profile(image_path)
    shape = (profile["height"], profile["width"])
    n_classes = len(classes.names)
    strokes, read, layout = _stroke_reader(image_path, classes, options)
    context = stroke_context(read, layout, n_classes, scale, params, progress)
    if context is None:
        raise strokes.none_found()
    if options.save_strokes:
        polygons = polygonize(strokes.read, shape, window=options.block)
        batches = ((to_map(p.geometry, profile["transform"]), p.value) for p in polygons)
        names, field = classes.names, options.class_field
        write_stroke_polygons(options.save_strokes, batches, names, profile, field)
    thumbs = Thumbnails(shape)
    step = max(1, round(1 / scale))  # windows on the working grid: less jitter at edges
    halo = -(-crf_reach(params, scale) // step) * step
    windows = halo_windows(*shape, max(step, options.block // step * step), halo)
    measure = options.uncertainty
    units = [
        LabelWindow(
            image_path,
            strokes,
            n_classes,
            params,
            scale,
            context,
            core,
            outer,
            shape,
            options.workers,
            thumbs.factor,
            paths.confidence is not None,
            measure,
        )
        for core, outer in windows
    ]
    inputs = {
        "image": file_identity(image_path),
        "strokes": file_identity(options.strokes),
        "class_field": options.class_field,
        "classes": classes.names,
        "params": asdict(params),
        "scale": scale,
        "block": options.block,
        "outputs": [thumbs.factor, paths.confidence is not None, measure],
    }
    counts = np.zeros(n_classes + 1, np.int64)
    tally = WindowTally(shape, n_classes)
    with contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=STREAM_CACHE_MB))
        labels = stack.enter_context(
            open_cog_writer(paths.geotiff, profile, stroke_dtype(n_classes), 0, classes)
        )
        if paths.confidence is not None:
            put_confidence = stack.enter_context(
                open_fraction_writer(paths.confidence, profile, shape)
            )
        if paths.uncertainty is not None:
            put_uncertainty = stack.enter_context(
                open_fraction_writer(paths.uncertainty, profile, shape)
            )
        journal = Journal(paths.geotiff, inputs, options.resume)
        done = run_units(executor, label_window, units, journal)
        for found in progress(done, total=len(units), desc=image_path.name, unit="window"):
            counts += found.counts
            write_window(labels, found.values, found.core)
            if found.confidence is not None:
                put_confidence(found.confidence, found.core)
            if found.uncertainty is not None:
                put_uncertainty(found.uncertainty, found.core)
                tally.merge(found.tally)
            for name, piece in found.pieces.items():
                thumbs.paste(name, piece)
            del found
        panels = (thumbs.arrays[name] for name in ("image", "strokes", "class"))
        fig = groundtruth_figure(*panels, classes.names, classes.colors, title=image_path.name)
        save_figure(fig, paths.figure)
        if paths.uncertainty is not None:
            ranked = tally.ranked()
            write_window_ranking(ranked, classes.names, profile, paths.next_csv, paths.next_geojson)
    journal.remove()
    seconds = {"painting": painting, "computing": time.perf_counter() - start}
    check = None
    if options.check:
        check = _check_shrunk(read, layout, n_classes, scale, params, options, progress)
        for line in check.lines(classes.names):
            log(line)
    summary = LabelSummary(image_path, shape, counts, scale, params, seconds, check, len(units))
    with atomic_path(paths.report) as tmp:
        tmp.write_text(report_text(summary, classes.names))
    return summary


def _check_shrunk(
    read: StrokeReader,
    layout: tuple[tuple[int, int], int, np.dtype],
    n_classes: int,
    scale: float,
    params: CRFParams,
    options: LabelOptions,
    progress: Progress,
) -> StrokeCheck:
    """``options.check`` of an image labelled in windows (see :func:`label_in_windows`)."""
    check_scale = min(scale, CHECK_SCALE)
    (height, width) = layout[0]
    cell = max(round(1 / check_scale), math.ceil(math.sqrt(height * width / CHECK_PIXELS)))
    small, valid, strokes = shrink_strokes(read, layout, cell, progress)
    return check_strokes(
        small,
        strokes,
        n_classes,
        folds=options.check,
        scale=1.0,
        params=scaled_params(params, 1 / (cell * check_scale)),
        nodata=~valid,
        workers=options.workers or os.cpu_count() or 1,
        progress=progress,
    )
