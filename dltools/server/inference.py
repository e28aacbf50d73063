"""What the server does with one request, on a worker thread: the pipeline's own functions.

Segmentation runs the windowed file functions of steps 6 and 8
(:func:`dltools.pipeline.segment.segment_file`, :func:`dltools.pipeline.fcn.infer_file` and
:func:`~dltools.pipeline.fcn.infer_file_crf`) on the uploaded file, so a result equals what
``dltools segment`` / ``dltools fcn infer`` write for the same image and settings, and big
rasters run in bounded memory. Spectra are classified by
:func:`dltools.spectral.inference.predict_cube` and encoded by
:func:`~dltools.spectral.inference.encode_cube`, on a one-row cube. Everything is written
under a per-request folder that the caller removes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dltools.engines.refine import DEFAULT_REFINER
from dltools.errors import DltoolsError
from dltools.io.geo import is_georeferenced, read_profile, read_raster
from dltools.io.images import write_image
from dltools.pipeline.fcn import Tiling
from dltools.raster.windows import iter_windows
from dltools.server.registry import TILE, ServedModel

SUMMARY_BLOCK = 2048  # pixels per side of the windows the confidence raster is read in
MAX_SPECTRA = 100_000  # spectra per classify request


@dataclass(frozen=True)
class SegmentOptions:
    """Query options of ``/segment``: step 6's ``refine``, ``tile`` (None: the side of the
    model's training tiles), ``prob_thres``, ``decim`` and ``fct`` for tile models; step 8's
    ``tta`` and ``crf`` for FCN runs."""

    refine: str = DEFAULT_REFINER
    tile: int | None = None
    prob_thres: float = 0.5
    decim: int = 1
    fct: float = 0.25
    tta: bool = Tiling.tta
    crf: bool = False


class Confidence:
    """Summary of per-pixel top-class probabilities, accumulated block by block (NaN ignored):
    mean, minimum and quantiles from a histogram of :data:`BINS` bins over [0, 1]."""

    BINS = 1000

    def __init__(self) -> None:
        self.histogram = np.zeros(self.BINS, np.int64)
        self.total = 0.0
        self.minimum = 1.0

    def add(self, values: np.ndarray) -> None:
        """Count the finite values of ``values`` (any shape)."""
        found = values[np.isfinite(values)].astype(np.float64)
        if found.size:
            bins = np.clip((found * self.BINS).astype(np.int64), 0, self.BINS - 1)
            self.histogram += np.bincount(bins, minlength=self.BINS)
            self.total += float(found.sum())
            self.minimum = min(self.minimum, float(found.min()))

    def summary(self) -> dict[str, float | int | None]:
        """``pixels``, ``mean``, ``min``, ``p05``, ``median``, ``p95`` (None without pixels)."""
        pixels = int(self.histogram.sum())
        if not pixels:
            return {"pixels": 0, **dict.fromkeys(("mean", "min", "p05", "median", "p95"))}
        cumulative = np.cumsum(self.histogram) / pixels

        def quantile(q: float) -> float:
            return round((int(np.searchsorted(cumulative, q)) + 0.5) / self.BINS, 4)

        return {
            "pixels": pixels,
            "mean": self.total / pixels,
            "min": self.minimum,
            "p05": quantile(0.05),
            "median": quantile(0.5),
            "p95": quantile(0.95),
        }


@dataclass
class Segmented:
    """A segmentation: ``label`` is a GeoTIFF of class + 1 (0 = nodata) on the input's grid;
    ``fractions`` of the labelled pixels per class name; ``confidence``: a
    :meth:`Confidence.summary`."""

    label: Path
    georeferenced: bool
    fractions: dict[str, float]
    confidence: dict[str, float | int | None]


def segment(served: ServedModel, image: Path, workdir: Path, options: SegmentOptions) -> Segmented:
    """Segment ``image`` with a tile model or an FCN run, writing under ``workdir``."""
    label = workdir / "label.tif"
    confidence = Confidence()
    if served.kind == TILE:
        from dltools.pipeline.segment import SegmentParams, SegmentPaths, segment_file

        params = SegmentParams(
            tile=options.tile or served.tile_size,
            prob_thres=options.prob_thres,
            decim=options.decim,
            fct=options.fct,
            refine=options.refine,
        )
        probability = workdir / "probability.tif"
        paths = SegmentPaths(None, workdir / "figure.png", label, probability)
        names, colors = served.classes
        summary = segment_file(image, served.model, names, colors, params, paths, workers=1)
        profile = read_profile(probability)
        for window in iter_windows(profile["height"], profile["width"], SUMMARY_BLOCK):
            confidence.add(read_raster(probability, window))
        fractions = summary.fractions
    else:  # an FCN run: the app sends no other kind here
        from dltools.engines.crf import CRFParams
        from dltools.pipeline.fcn import (
            CRF_BLOCK,
            CRF_GT_PROB,
            CRF_SCALE,
            InferOutputs,
            infer_file,
            infer_file_crf,
        )

        outputs, tiling = InferOutputs(label, None, None), Tiling(tta=options.tta)
        if options.crf:
            params = CRFParams(gt_prob=CRF_GT_PROB)
            counts = infer_file_crf(
                served.model,
                image,
                outputs,
                params,
                CRF_SCALE,
                replace(tiling, max_width=CRF_BLOCK),
                1,
                confidence=confidence.add,
            )
        else:
            counts = infer_file(served.model, image, outputs, tiling, confidence=confidence.add)
        labelled = max(int(counts[1:].sum()), 1)
        names = served.classes.names
        fractions = {name: int(n) / labelled for name, n in zip(names, counts[1:], strict=True)}
    return Segmented(label, is_georeferenced(image), fractions, confidence.summary())


def label_png(label: Path, path: Path) -> Path:
    """The label GeoTIFF ``label`` as an 8-bit PNG at ``path``."""
    write_image(path, read_raster(label)[..., 0])
    return path


def check_spectra(spectra: object, bands: int) -> np.ndarray:
    """JSON ``[[b1, ..., bB], ...]`` -> (n, B) float32; DltoolsError for anything else."""
    if not isinstance(spectra, list) or not spectra:
        raise DltoolsError("'spectra' must be a non-empty list of spectra (lists of numbers)")
    if len(spectra) > MAX_SPECTRA:
        raise DltoolsError(f"at most {MAX_SPECTRA} spectra per request, got {len(spectra)}")
    for i, spectrum in enumerate(spectra):
        if not isinstance(spectrum, list) or len(spectrum) != bands:
            length = len(spectrum) if isinstance(spectrum, list) else "not a list"
            raise DltoolsError(
                f"spectrum {i} has {length} values but the model takes {bands}-band spectra"
            )
    try:
        array = np.array(spectra, np.float32)
    except (TypeError, ValueError):
        raise DltoolsError("spectra must hold numbers only") from None
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise DltoolsError(f"spectrum {bad[0]} holds NaN or infinite values")
    return array


def classify(
    served: ServedModel,
    spectra: np.ndarray,
    workdir: Path,
    unknown_below: float = 0.0,
    features: str | None = None,
) -> dict:
    """Classify (n, B) spectra of a spectral classifier: ``classes`` (names, ``"unknown"``
    below ``unknown_below``), ``values``, ``probabilities`` (n, K) in class order, and
    ``features`` of a named layer."""
    from dltools.spectral.inference import predict_cube

    classes, scores = workdir / "classes.tif", workdir / "scores.tif"
    wanted = None if features is None else (features, workdir / "features.tif")
    cube = _one_row_cube(spectra, workdir)
    predict_cube(served.model, cube, classes, scores, wanted, unknown_below)
    values = read_raster(classes)[0, :, 0].astype(int)
    names = dict(zip(served.values(), served.classes.names, strict=True))
    result = {
        "classes": [names.get(int(v), "unknown") for v in values],
        "values": values.tolist(),
        "class_names": served.classes.names,
        "probabilities": read_raster(scores)[0].tolist(),
    }
    if wanted is not None:
        result["features"] = read_raster(wanted[1])[0].tolist()
    return result


def encode(served: ServedModel, spectra: np.ndarray, workdir: Path) -> dict:
    """Encode (n, B) spectra with a spectral autoencoder: ``latent`` (n, Z) as lists."""
    from dltools.spectral.inference import encode_cube

    encode_cube(served.model, _one_row_cube(spectra, workdir), workdir / "latent.tif")
    return {"latent": read_raster(workdir / "latent.tif")[0].tolist()}


def _one_row_cube(spectra: np.ndarray, workdir: Path):
    """(n, B) spectra saved under ``workdir`` as a (1, n, B) cube, opened."""
    from dltools.spectral.cube import open_cube

    np.save(workdir / "spectra.npy", spectra[None])
    return open_cube(workdir / "spectra.npy")
