"""Step 2: a dense label image from strokes, and the files that hold it.

Array conventions: ``strokes`` (H, W) uint8, 0 = no stroke, k = class k (1-based);
``class_map`` (H, W) uint8, 0-based classes, :data:`dltools.engines.crf.NODATA` where the
image has nodata (-1 in the ``.mat`` file's ``class``);
``posteriors`` (h, w, K) float32 CRF posteriors at the working scale (the ``.mat``'s ``preds``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltools.engines.crf import NODATA, CRFParams, confidence_map, label_from_strokes
from dltools.engines.stroke_check import StrokeCheck, check_strokes
from dltools.engines.uncertainty import next_windows, uncertainty_map, upsample
from dltools.errors import DltoolsError
from dltools.figures.panels import groundtruth_figure, save_figure
from dltools.gui.painter import paint_strokes
from dltools.io.cog import cog_outputs, write_cog, write_fraction_raster
from dltools.io.geo import is_georeferenced, read_nodata_mask, read_profile
from dltools.io.images import read_image, write_image
from dltools.io.labels import Classes
from dltools.io.outputs import atomic_path, ensure_new
from dltools.io.results import NODATA as MAT_NODATA
from dltools.io.results import LabelResult, write_result
from dltools.io.strokes import read_strokes, write_stroke_layer
from dltools.io.vectors import write_window_ranking
from dltools.progress import Progress, quiet

CHECK_SCALE = 0.2  # the stroke check's working scale at most (six CRF runs instead of one)
ORDERS = ("rows", "uncertain")  # the orders in which the painter visits its windows


@dataclass(frozen=True)
class GroundTruthPaths:
    """Every file step 2 writes for one image (``None``: not written for this run)."""

    strokes: Path  # <name>_doodles.png: the painted strokes, saved as they are drawn
    mat: Path
    figure: Path
    label_png: Path
    report: Path
    geotiff: Path | None = None
    confidence: Path | None = None
    uncertainty: Path | None = None
    next_csv: Path | None = None
    next_geojson: Path | None = None

    def outputs(self) -> list[Path]:
        """The result files (not the strokes, which are the input being painted), with the
        ``.qml`` styles of the GeoTIFFs."""
        paths = [self.mat, self.figure, self.label_png, self.report]
        for raster in (self.geotiff, self.confidence, self.uncertainty):
            if raster is not None:
                paths += cog_outputs(raster) if raster.suffix == ".tif" else [raster]
        return paths + [p for p in (self.next_csv, self.next_geojson) if p is not None]


def groundtruth_paths(
    image_path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    geotiff: bool = False,
    confidence: bool = False,
    uncertainty: bool = False,
) -> GroundTruthPaths:
    """Output names for ``image_path``: ``<name>_mres.mat`` etc. in ``out_dir`` or beside it;
    with ``uncertainty``, ``<name>_uncertainty.tif`` (``.png`` for plain images) and the
    ranked windows ``<name>_next.csv`` / ``<name>_next.geojson``."""
    image_path = Path(image_path)
    folder = Path(out_dir) if out_dir is not None else image_path.parent
    base = folder / image_path.stem
    confidence_suffix = ".tif" if geotiff else ".png"
    return GroundTruthPaths(
        strokes=Path(f"{base}_doodles.png"),
        mat=Path(f"{base}_mres.mat"),
        figure=Path(f"{base}_mres.png"),
        label_png=Path(f"{base}_mres_label.png"),
        report=Path(f"{base}_report.txt"),
        geotiff=Path(f"{base}_mres_geo.tif") if geotiff else None,
        confidence=Path(f"{base}_mres_confidence{confidence_suffix}") if confidence else None,
        uncertainty=Path(f"{base}_uncertainty{confidence_suffix}") if uncertainty else None,
        next_csv=Path(f"{base}_next.csv") if uncertainty else None,
        next_geojson=Path(f"{base}_next.geojson") if uncertainty else None,
    )


def class_fractions(class_map: np.ndarray, n_classes: int) -> np.ndarray:
    """(K,) float64: the fraction of valid (not nodata) pixels in each class."""
    counts = np.bincount(class_map.ravel(), minlength=NODATA + 1)[:n_classes]
    return counts / max(int(counts.sum()), 1)


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


def report_text(gt: GroundTruth) -> str:
    """The human-readable summary written to ``<name>_report.txt``."""
    height, width = gt.class_map.shape
    nodata = int((gt.class_map == NODATA).sum())
    lines = [
        f"image: {gt.image_path}",
        f"size: {width} x {height} pixels ({height * width} pixels, {nodata} nodata)",
        f"working scale: {gt.scale}",
        "CRF: " + ", ".join(f"{k}={v}" for k, v in vars(gt.params).items()),
        "class fractions (of valid pixels):",
    ]
    fractions = class_fractions(gt.class_map, len(gt.class_names))
    width_names = max(len(name) for name in gt.class_names)
    lines += [
        f"  {name:<{width_names}}  {fraction:.4f}"
        for name, fraction in zip(gt.class_names, fractions, strict=True)
    ]
    for activity in ("painting", "computing"):
        lines.append(f"minutes {activity}: {gt.seconds.get(activity, 0.0) / 60:.2f}")
    if gt.check is not None:
        lines += gt.check.lines(gt.class_names)
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
    if paths.uncertainty is not None:
        write_next(gt, paths)
    with atomic_path(paths.report) as tmp:
        tmp.write_text(report_text(gt))


def write_next(gt: GroundTruth, paths: GroundTruthPaths) -> None:
    """Where to paint next: the uncertainty raster of ``gt``'s posteriors (``paths.uncertainty``,
    a COG on the image's grid or an 8-bit PNG, 255 = a tie) and its windows ranked, most
    uncertain first (``paths.next_csv`` and ``paths.next_geojson``)."""
    valid = gt.class_map != NODATA
    values, ranked = next_windows(gt.posteriors, valid, gt.uncertainty)
    write_fraction_raster(paths.uncertainty, values, gt.profile)
    write_window_ranking(ranked, gt.class_names, gt.profile, paths.next_csv, paths.next_geojson)


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
    posteriors of the strokes so far; its ``r`` key re-ranks)."""

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


def label_image(
    image_path: str | os.PathLike,
    classes: Classes,
    params: CRFParams,
    scale: float,
    options: LabelOptions = LabelOptions(),
    progress: Progress = quiet,
    also_new: Sequence[Path] = (),
    log: Callable[[str], None] = lambda _: None,
) -> GroundTruthPaths:
    """Step 2 for one image: strokes (painted, or replayed from ``options.strokes``) -> a dense
    CRF label image at working ``scale`` (0 < scale <= 1), written as :class:`GroundTruthPaths`.

    Every input is checked and every output conflict (``also_new``: outputs the caller writes
    afterwards) found before any window opens or any file is written. The stroke check's report
    goes to ``log`` line by line (and to the report file). Returns the paths written.
    """
    if not 0 < scale <= 1:
        raise DltoolsError(f"-s must be in (0, 1], got {scale}")
    if options.order not in ORDERS:
        raise DltoolsError(f"--order must be one of {', '.join(ORDERS)}, got {options.order!r}")
    image_path = Path(image_path)
    georeferenced = is_georeferenced(image_path)
    if options.georeferenced_only and not georeferenced:
        raise DltoolsError(
            f"{image_path} has no georeferencing: use label_1image_crf.py for plain images"
        )
    profile = read_profile(image_path) if georeferenced else None
    paths = groundtruth_paths(
        image_path,
        options.out_dir,
        georeferenced,
        options.confidence,
        options.uncertainty is not None,
    )
    if options.save_strokes and profile is None:
        raise DltoolsError(f"--save-strokes: {image_path} is not georeferenced")
    saved = [Path(options.save_strokes)] if options.save_strokes else []
    ensure_new([*paths.outputs(), *saved, *also_new], force=options.force)
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
        resuming = options.strokes and Path(options.strokes).resolve() == paths.strokes.resolve()
        if not resuming:
            ensure_new([paths.strokes], force=options.force)
        start = time.perf_counter()

        def uncertainty(painted: np.ndarray) -> np.ndarray | None:
            if not painted.any():
                return None
            _, posteriors = label_from_strokes(
                image, painted, len(classes.names), scale, params, nodata, options.workers
            )
            return upsample(uncertainty_map(posteriors, options.uncertainty or "margin"), shape)

        shape = image.shape[:2]
        strokes = paint_strokes(
            image,
            classes.names,
            classes.colors,
            scale=scale,
            window=options.window,
            initial=strokes,
            autosave_path=paths.strokes,
            brush=options.brush,
            uncertainty=uncertainty if options.order == "uncertain" else None,
        )
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
