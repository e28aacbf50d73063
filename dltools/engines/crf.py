"""The dense-CRF engine: strokes or soft labels + an image -> per-class posteriors and labels.

One fully connected CRF (Krähenbühl & Koltun 2011, through pydensecrf) with the original
dl_tools energy: a unary from the evidence and a bilateral (appearance) kernel over position
and *all* bands, optionally plus a Gaussian smoothness kernel.

Any image size runs in bounded memory (one dense CRF needs about 0.5 GB per megapixel):

1. *Coarse pass.* One CRF runs on a copy shrunk to half its side, or to half a megapixel if
   that is smaller, with a kernel that reaches twice as far. Its upsampled posteriors become
   a weak prior (:data:`PRIOR_WEIGHT`) for every pixel without evidence, so a window without
   strokes takes its labels from its neighbourhood, and pixels that no stroke reaches within
   a window (a plain CRF leaves them uniform, so argmax says class 0) follow the image-wide
   answer. The pass does not depend on the windows and runs for small images too, so the
   tiling does not change the result. Labelling from strokes shrinks the full-size image by
   a whole number of pixels a cell instead (:func:`stroke_context`), reading it window by
   window, so that an image too large to hold whole gets the same pass: its windows are
   then labelled one by one with that pass as their :class:`ImageContext`.
2. *Windows.* Overlapping windows (overlap 2 x theta) are cut in the parent
   process and solved by a pool of worker processes, at most two per worker in flight.
   Lattice features use whole-image coordinates and one band normalisation, so a window sees
   what a whole-image CRF would see there: tiling changes 0.2% of the labels (a 480 x 720
   scene in 12 windows of 256 px at theta 20, against one window; see tests/test_crf.py).
3. *Blending.* Each window's posteriors are weighted by separable ramps that are zero in the
   outer quarter of each overlap and rise linearly across its middle half; the weights sum to
   one, so the result has no seams and the output array is the only accumulator.

Mean-field inference stops early once fewer than ``CRFParams.tol`` of the labels change in
an iteration (0 runs all ``iters``).

Nodata pixels are left out of the CRF entirely (they are not nodes), so they neither get
labels nor pass messages; their posteriors are 0 and their class is :data:`NODATA`.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np
import pydensecrf.densecrf as dcrf

from dltools.engines.uncertainty import upsample
from dltools.errors import DltoolsError
from dltools.progress import Progress, quiet
from dltools.raster.cells import cell_sums
from dltools.raster.windows import Window, iter_windows, span_weights, spread_spans

NODATA = 255  # class-map value of nodata pixels
PRIOR_WEIGHT = 0.1  # share of the coarse-pass posterior in the unary of pixels without evidence
_COARSE_PIXELS = 2**19  # the coarse pass holds at most this many pixels (about 0.25 GB)
_COARSE_REACH = 2.0  # its bilateral kernel reaches this many times further than the windows'
_BAND_SAMPLE = 1_000_000  # pixels sampled to find the band ranges of non-uint8 images
_ROWS_PER_BAND = 256  # full-resolution rows upsampled at a time
_COARSE_READ = 2048  # the coarse pass of strokes reads windows of about this many pixels a side


@dataclass(frozen=True)
class CRFParams:
    """CRF settings; defaults are those of the original dl_tools.

    ``theta``: spatial std of the bilateral kernel, in working pixels. ``scale``: its colour std
    in 8-bit grey levels (other dtypes are stretched to that range). ``compat``: weight of the
    bilateral term. ``gt_prob``: confidence in the evidence. ``iters``: at most this many
    mean-field iterations; ``tol``: stop once fewer than this fraction of labels change in one.
    ``gaussian_sxy`` / ``gaussian_compat``: the optional position-only smoothness term (off when
    ``gaussian_sxy`` is None). ``median_radius``: median filter on the full-size labels (0: off).
    """

    theta: float = 60.0
    scale: float = 1.0
    compat: float = 100.0
    gt_prob: float = 0.5
    iters: int = 30
    gaussian_sxy: float | None = None
    gaussian_compat: float = 3.0
    median_radius: int = 5
    tol: float = 1e-3

    def __post_init__(self) -> None:
        problems = []
        if not self.theta > 0:
            problems.append(f"theta must be > 0, got {self.theta}")
        if not self.scale > 0:
            problems.append(f"scale must be > 0, got {self.scale}")
        if not 0 < self.gt_prob < 1:
            problems.append(f"gt-prob must lie strictly between 0 and 1, got {self.gt_prob}")
        if self.iters < 1:
            problems.append(f"iters must be >= 1, got {self.iters}")
        if self.gaussian_sxy is not None and not self.gaussian_sxy > 0:
            problems.append(f"the Gaussian term's sxy must be > 0, got {self.gaussian_sxy}")
        if self.median_radius < 0:
            problems.append(f"median radius must be >= 0, got {self.median_radius}")
        if not 0 <= self.tol < 1:
            problems.append(f"tol must lie in [0, 1), got {self.tol}")
        if problems:
            raise DltoolsError("bad CRF settings: " + "; ".join(problems))


# ----------------------------------------------------------------------------- unaries


def unary_from_strokes(strokes: np.ndarray, n_classes: int, gt_prob: float) -> np.ndarray:
    """Unary energies (negative log probabilities) from strokes, as the original dl_tools made them.

    ``strokes``: (h, w) int, 0 = no stroke, k = class k (1-based). A stroke pixel of class k has
    probability ``gt_prob`` for class k-1 and ``(1 - gt_prob) / n_classes`` for each other class
    (pydensecrf's ``unary_from_labels`` with ``n_classes + 1`` labels, as dl_tools called it, so
    a stroke keeps its weight with two classes at the default ``gt_prob`` of 0.5); a pixel
    without a stroke is uniform. Returns (n_classes, h * w) float32.
    """
    return _unary(np.asarray(strokes), n_classes, gt_prob)


def _unary(
    evidence: np.ndarray, n_classes: int, gt_prob: float, prior: np.ndarray | None = None
) -> np.ndarray:
    """(K, h * w) float32 unary from strokes (h, w) or probabilities (h, w, K).

    Known evidence p (one-hot for a stroke) becomes ``gt_prob * p + (1 - gt_prob) * (1 - p) /
    K`` (see :func:`unary_from_strokes`). Unknown pixels (no stroke; NaN or all-zero
    probabilities) are uniform, or mix in ``prior`` (h, w, K) with weight :data:`PRIOR_WEIGHT`.
    """
    k = n_classes
    if evidence.ndim == 2:
        flat = evidence.reshape(-1)
        known = flat > 0
        p = np.zeros((k, flat.size), np.float32)
        p[flat[known].astype(np.intp) - 1, np.flatnonzero(known)] = 1
    else:
        p = np.ascontiguousarray(evidence.reshape(-1, k).T, dtype=np.float32)
        known = known_evidence(p.T)
        p[:, ~known] = 0
        p /= np.maximum(p.sum(axis=0), 1e-12)
    p *= gt_prob - (1 - gt_prob) / k
    p += (1 - gt_prob) / k
    unknown = ~known
    if prior is None:
        p[:, unknown] = 1 / k
    else:
        mixed = prior.reshape(-1, k).T[:, unknown] * PRIOR_WEIGHT
        mixed += (1 - PRIOR_WEIGHT) / k
        p[:, unknown] = mixed
    np.maximum(p, 1e-6, out=p)
    return -np.log(p)


# ----------------------------------------------------------------------------- one window


def band_scaling(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per-band ``(offset, gain)`` mapping pixel values to 8-bit-like appearance features.

    Returns (2, C) float32: feature = (value - offset) * gain / scale. uint8 bands are kept as
    they are; other dtypes are stretched so that their 0.1-99.9 percentiles (over ``valid``
    pixels) span 0-255. All gains are multiplied by sqrt(3 / C), so that a difference of d in
    every band weighs as it does in 8-bit RGB, whatever the band count.
    """
    image = _as_hwc(image)
    n_bands = image.shape[2]
    balance = np.sqrt(3.0 / n_bands)
    if image.dtype != np.uint8:
        step = max(1, int(np.ceil(np.sqrt(image.shape[0] * image.shape[1] / _BAND_SAMPLE))))
        sample = image[::step, ::step]
        if valid is not None:
            sample = sample[valid[::step, ::step]]
        sample = sample.reshape(-1, n_bands).astype(np.float64)
        sample = sample[np.isfinite(sample).all(axis=1)]
        if sample.size:
            low, high = np.percentile(sample, [0.1, 99.9], axis=0)
            span = np.where(high > low, high - low, 1.0)
            return np.stack([low, 255.0 / span * balance]).astype(np.float32)
    # uint8 bands, or no finite valid pixel to stretch from: offsets 0
    return np.array([[0.0] * n_bands, [balance] * n_bands], np.float32)


def dense_crf(
    image: np.ndarray,
    unary: np.ndarray,
    params: CRFParams = CRFParams(),
    valid: np.ndarray | None = None,
    bands: np.ndarray | None = None,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """One fully connected CRF over a whole (small) image; memory about 0.5 GB per megapixel.

    ``image``: (h, w, C) any dtype; ``unary``: (K, h * w) float32 energies; ``valid``: (h, w)
    bool, False pixels are left out. ``bands``: :func:`band_scaling` of the whole image (default:
    of this one); ``origin``: this window's (row, col) in the whole image. Returns (h, w, K)
    float32 posteriors, all 0 at invalid pixels.
    """
    image = _as_hwc(image)
    h, w, n_bands = image.shape
    n_classes = unary.shape[0]
    if unary.shape != (n_classes, h * w):
        raise ValueError(f"unary shape {unary.shape} does not fit a {h}x{w} image")
    if bands is None:
        bands = band_scaling(image, valid)
    index = np.flatnonzero(valid) if valid is not None else np.arange(h * w)
    out = np.zeros((h * w, n_classes), np.float32)
    if not index.size:
        return out.reshape(h, w, n_classes)
    rows, cols = np.divmod(index, w)
    rows = (rows + origin[0]).astype(np.float32)
    cols = (cols + origin[1]).astype(np.float32)
    pixels = image.reshape(-1, n_bands)[index].astype(np.float32)
    pixels -= bands[0]
    pixels *= bands[1] / np.float32(params.scale)
    feats = np.empty((2 + n_bands, index.size), np.float32)
    feats[2:] = pixels.T
    del pixels
    crf = dcrf.DenseCRF(index.size, n_classes)
    crf.setUnaryEnergy(np.ascontiguousarray(unary[:, index], dtype=np.float32))
    # the bilateral kernel over position and bands, then the optional position-only one
    kernels = [(params.theta, params.compat, len(feats))]
    if params.gaussian_sxy is not None:
        kernels.append((params.gaussian_sxy, params.gaussian_compat, 2))
    for sxy, compat, n_feats in kernels:
        feats[0] = rows / np.float32(sxy)
        feats[1] = cols / np.float32(sxy)
        crf.addPairwiseEnergy(
            np.ascontiguousarray(feats[:n_feats]),
            compat=compat,
            kernel=dcrf.DIAG_KERNEL,
            normalization=dcrf.NORMALIZE_SYMMETRIC,
        )
    del feats, rows, cols
    out[index] = _mean_field(crf, params, index.size).T
    return out.reshape(h, w, n_classes)


def _mean_field(crf: dcrf.DenseCRF, params: CRFParams, n: int) -> np.ndarray:
    """Mean field until the labels settle (``params.tol``) or ``params.iters``; (K, n) float32."""
    q, tmp1, tmp2 = crf.startInference()
    labels = None
    for _ in range(params.iters):
        crf.stepInference(q, tmp1, tmp2)
        if params.tol <= 0:
            continue
        new = np.argmax(np.asarray(q), axis=0)
        if labels is not None and np.count_nonzero(new != labels) < params.tol * n:
            break
        labels = new
    return np.asarray(q, dtype=np.float32)


# ----------------------------------------------------------------------------- any size


def tiled_crf(
    image: np.ndarray,
    evidence: np.ndarray,
    n_classes: int,
    params: CRFParams = CRFParams(),
    valid: np.ndarray | None = None,
    window: int = 1024,
    workers: int | None = None,
    progress: Progress = quiet,
    context: ImageContext | None = None,
) -> np.ndarray:
    """Dense CRF over an image of any size in overlapping windows, in parallel, blended.

    ``image``: (h, w, C) any dtype, at working scale. ``evidence``: (h, w) int strokes (0 = none,
    k = class k) or (h, w, K) float probabilities (NaN or all-zero rows = unknown). ``valid``:
    (h, w) bool, False = nodata. ``window``: window side in pixels (each worker needs about
    0.5 GB at 1024; neighbours share 2 x theta pixels); ``workers``: processes (default: all
    cores). Returns (h, w, K) float32 posteriors (0 at nodata).
    A coarse pass always runs first (see the module docstring), so the result barely depends on
    ``window``. ``context``: ``image`` is a window of a larger image whose coarse pass has run
    (see :class:`ImageContext`); its prior and band scaling are used instead.
    """
    image = _as_hwc(image)
    shape = image.shape[:2]
    valid = _valid_mask(image, valid)
    _check_evidence(evidence, shape, n_classes, "evidence")
    overlap = round(2 * params.theta)
    if window <= 2 * overlap:
        raise DltoolsError(
            f"CRF window {window} px must be more than twice the overlap ({overlap} px); "
            "use a bigger window or a smaller theta"
        )
    workers = max(1, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    ys, xs = spread_spans(shape[0], window, overlap), spread_spans(shape[1], window, overlap)
    n_tasks = len(ys) * len(xs)
    with Runner(min(workers, n_tasks)) as run:
        if context is None:
            bands = band_scaling(image, valid)
            coarse = _coarse_inputs(image, evidence, n_classes, params, valid, bands)
            context = ImageContext(run.one(dense_crf, *coarse), shape, bands)
            del coarse
        top, left = context.origin
        wy, wx = span_weights(ys, shape[0]), span_weights(xs, shape[1])
        out = np.zeros((*shape, n_classes), np.float32)

        def tasks():
            for (y0, y1), ry in zip(ys, wy, strict=True):
                for (x0, x1), rx in zip(xs, wx, strict=True):
                    win = (slice(y0, y1), slice(x0, x1))
                    there = (slice(top + y0, top + y1), slice(left + x0, left + x1))
                    local = _bilinear(context.prior, context.shape, there)
                    unary = _unary(evidence[win], n_classes, params.gt_prob, local)
                    origin = (top + y0, left + x0)
                    args = (image[win], unary, params, valid[win], context.bands, origin)
                    yield (win, ry[:, None, None] * rx[None, :, None]), args

        done = run.ordered(dense_crf, tasks())
        for (win, weight), posterior in progress(
            done, total=n_tasks, desc="CRF windows", unit="window"
        ):
            posterior *= weight
            out[win] += posterior
    return out


def _coarse_inputs(
    image: np.ndarray,
    evidence: np.ndarray,
    n_classes: int,
    params: CRFParams,
    valid: np.ndarray,
    bands: np.ndarray,
) -> tuple:
    """Arguments of :func:`dense_crf` for the coarse pass: the image shrunk to half its side or
    to :data:`_COARSE_PIXELS`, whichever is smaller; theta shrinks less (:data:`_COARSE_REACH`)."""
    factor = coarse_factor(image.shape[:2])
    small = working_shape(image.shape[:2], factor)
    small_evidence = _resize_evidence(evidence, small, n_classes, valid)
    unary = _unary(small_evidence, n_classes, params.gt_prob)
    return (
        resize_valid_area(image, small, valid),
        unary,
        scaled_params(params, factor, _COARSE_REACH),
        working_valid_mask(valid, small),
        bands,
    )


def coarse_factor(shape: tuple[int, int]) -> float:
    """The coarse pass's side over the working image's, (h, w) = ``shape``: half, or less
    to hold at most :data:`_COARSE_PIXELS`."""
    return float(min(0.5, np.sqrt(_COARSE_PIXELS / (shape[0] * shape[1]))))


def scaled_params(params: CRFParams, factor: float, reach: float = 1.0) -> CRFParams:
    """``params`` for an image ``factor`` times the size it was set for: the kernels shrink
    with the image, the bilateral one ``reach`` times less (the coarse pass:
    :data:`_COARSE_REACH`)."""
    sxy = None if params.gaussian_sxy is None else params.gaussian_sxy * factor
    return replace(params, theta=params.theta * factor * reach, gaussian_sxy=sxy)


@dataclass(frozen=True)
class ImageContext:
    """What one window of a larger image shares with the whole, for :func:`tiled_crf`.

    ``prior``: (hc, wc, K) float32 posteriors of the coarse pass over the whole image;
    ``shape``: the (H, W) working grid of the whole, onto which ``prior`` is stretched;
    ``bands``: the (2, C) :func:`band_scaling` of the whole; ``origin``: the window's
    (row, col) on the working grid.
    """

    prior: np.ndarray
    shape: tuple[int, int]
    bands: np.ndarray
    origin: tuple[int, int] = (0, 0)


# window -> its (h, w, C) pixels, (h, w) bool validity and (h, w) strokes
StrokeReader = Callable[[Window], tuple[np.ndarray, np.ndarray, np.ndarray]]


def stroke_context(
    read: StrokeReader,
    layout: tuple[tuple[int, int], int, np.dtype],
    n_classes: int,
    scale: float,
    params: CRFParams,
    progress: Progress = quiet,
) -> ImageContext | None:
    """The coarse pass of labelling an image from strokes, read window by window.

    ``read`` and ``layout`` as in :func:`shrink_strokes`, which shrinks the image by
    :func:`coarse_cell` to at most :data:`_COARSE_PIXELS`; one CRF then runs on it, as the
    coarse pass of :func:`tiled_crf`. Returns the :class:`ImageContext` of the whole image
    at working ``scale`` (its band scaling from the shrunk image), or None without any stroke.
    """
    shape = layout[0]
    cell = coarse_cell(shape, scale)
    small, valid, strokes = shrink_strokes(read, layout, cell, progress)
    if not strokes.any():
        return None
    bands = band_scaling(small, valid)
    unary = _unary(strokes, n_classes, params.gt_prob)
    factor = 1 / (cell * scale)
    prior = dense_crf(small, unary, scaled_params(params, factor, _COARSE_REACH), valid, bands)
    return ImageContext(prior, working_shape(shape, scale), bands)


def shrink_strokes(
    read: StrokeReader,
    layout: tuple[tuple[int, int], int, np.dtype],
    cell: int,
    progress: Progress = quiet,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An image and its strokes shrunk by a whole factor, read window by window.

    ``read(window)`` returns the window's (h, w, C) pixels, (h, w) bool validity and (h, w)
    int strokes (0 = none, k = class k) at full size; ``layout``: the image's (H, W), band
    count and dtype; ``cell``: full-size pixels a side of one pixel of the result. Windows of
    about :data:`_COARSE_READ` px are read. Returns the (hc, wc, C) image (the mean of the
    valid pixels of each cell, in the image's dtype), its (hc, wc) bool validity (half the
    cell valid) and the (hc, wc) uint16 strokes (the class with most stroke pixels in the
    cell; 0 = none), hc = ceil(H / cell) and wc = ceil(W / cell).
    """
    (height, width), n_bands, dtype = layout
    size = (-(-height // cell), -(-width // cell))
    sums = np.zeros((*size, n_bands), np.float64)
    valid_sums = np.zeros(size, np.float64)
    area = np.zeros(size, np.float64)
    strokes = np.zeros(size, np.uint16)
    most = np.zeros(size, np.float64)
    step = cell * max(1, _COARSE_READ // cell)
    windows = list(iter_windows(height, width, step))
    for window in progress(windows, total=len(windows), desc="shrinking", unit="window"):
        image, valid, marks = read(window)
        image = _as_hwc(image)
        valid = _valid_mask(image, valid)
        top, left = window.row_off // cell, window.col_off // cell
        cells = (
            slice(top, top + -(-window.height // cell)),
            slice(left, left + -(-window.width // cell)),
        )
        sums[cells] = cell_sums(np.where(valid[..., None], image, 0), cell)
        valid_sums[cells] = cell_sums(valid, cell)
        area[cells] = cell_sums(np.ones(valid.shape, np.uint8), cell)
        for k in np.unique(marks[valid & (marks > 0)]):
            share = cell_sums((marks == k) & valid, cell)
            more = share > most[cells]
            strokes[cells][more] = k
            np.maximum(most[cells], share, out=most[cells])
    means = sums / np.maximum(valid_sums, 1)[..., None]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        means = np.clip(np.rint(means), info.min, info.max)
    return means.astype(dtype), valid_sums >= 0.5 * area, strokes


def coarse_cell(shape: tuple[int, int], scale: float) -> int:
    """Full-size pixels a side of one pixel of :func:`stroke_context` for an (H, W) image at
    working ``scale``: :func:`coarse_factor` of the working image, or a little less, as a
    whole number of full-size pixels."""
    return max(1, math.ceil(1 / (scale * coarse_factor(working_shape(shape, scale))) - 1e-9))


def working_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """The (h, w) grid of an (H, W) image at working scale ``scale``."""
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def known_evidence(evidence: np.ndarray) -> np.ndarray:
    """(...) bool: pixels whose (..., K) evidence is finite and not all zero."""
    return np.isfinite(evidence).all(axis=-1) & (np.nan_to_num(evidence).sum(axis=-1) > 0)


def crf_reach(params: CRFParams, scale: float) -> int:
    """Full-size pixels of context a window needs around the part of it that is kept, for
    labels as a whole-image run would give them: twice the bilateral kernel's reach
    (``params.theta`` working pixels at ``scale``), the median filter's radius, and one
    working pixel for the upsampling."""
    return math.ceil((2 * params.theta + 1) / scale) + params.median_radius


class Runner:
    """Runs CRF jobs in this process (one worker) or in a pool of worker processes.

    Workers are forked on Linux (instant, and the caller's script needs no ``__main__`` guard);
    they only run numpy and pydensecrf, which are safe after a fork. Elsewhere they are spawned.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None
        if workers > 1:
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            context = multiprocessing.get_context(method)
            self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def one(self, func, *args):
        """``func(*args)``, in a worker when there is a pool (keeps this process small)."""
        if self.pool is None:
            return func(*args)
        return self.pool.submit(func, *args).result()

    def ordered(self, func, jobs):
        """Yield ``(key, func(*args))`` for ``(key, args)`` in ``jobs``, in order, with at most
        two jobs per worker in flight (bounded memory, deterministic blending order)."""
        if self.pool is None:
            for key, args in jobs:
                yield key, func(*args)
            return
        pending: deque = deque()
        for key, args in jobs:
            pending.append((key, self.pool.submit(func, *args)))
            if len(pending) >= 2 * self.workers:
                key0, future = pending.popleft()
                yield key0, future.result()
        while pending:
            key0, future = pending.popleft()
            yield key0, future.result()


# ----------------------------------------------------------------------------- full size


def label_from_strokes(
    image: np.ndarray,
    strokes: np.ndarray,
    n_classes: int,
    scale: float = 0.2,
    params: CRFParams = CRFParams(),
    nodata: np.ndarray | None = None,
    workers: int | None = None,
    progress: Progress = quiet,
    context: ImageContext | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Label every pixel of ``image`` from a few strokes.

    ``image``: (H, W, C) or (H, W), any dtype, all bands used. ``strokes``: (H, W) int, 0 = no
    stroke, k = class k (1-based, <= ``n_classes``). ``scale``: working scale in (0, 1]; theta is
    in working pixels. ``nodata``: (H, W) bool, True = no data. ``context``: ``image`` is a
    window of a larger image (see :class:`ImageContext`; the window may then hold no stroke).
    Returns (class map (H, W) uint8, 0-based, :data:`NODATA` at nodata; posteriors (h, w, K)
    float32 at working scale).
    """
    image = _as_hwc(image)
    strokes = np.asarray(strokes)
    _check_evidence(strokes, image.shape[:2], n_classes, "strokes")
    return _label(image, strokes, n_classes, scale, params, nodata, workers, progress, context)


def label_from_probs(
    image: np.ndarray,
    probabilities: np.ndarray,
    n_classes: int,
    scale: float = 0.2,
    params: CRFParams = CRFParams(),
    nodata: np.ndarray | None = None,
    workers: int | None = None,
    progress: Progress = quiet,
) -> tuple[np.ndarray, np.ndarray]:
    """Label every pixel of ``image`` from soft labels (e.g. tile-classifier probabilities).

    ``probabilities``: (h', w', K) float at any resolution (resampled to the working grid);
    rows that are NaN or all zero are unknown. Trusted with confidence ``params.gt_prob``.
    Other arguments and the result as in :func:`label_from_strokes`.
    """
    image = _as_hwc(image)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 3 or probabilities.shape[2] != n_classes:
        raise DltoolsError(
            f"probabilities must be (h, w, {n_classes}) for {n_classes} classes, "
            f"got shape {probabilities.shape}"
        )
    if np.nanmin(probabilities, initial=0.0) < 0:
        raise DltoolsError("probabilities must not be negative")
    return _label(image, probabilities, n_classes, scale, params, nodata, workers, progress)


def _label(image, evidence, n_classes, scale, params, nodata, workers, progress, context=None):
    """Shared body of the ``label_from_*`` functions: scale, CRF, upsample, median filter;
    strokes without a ``context`` get that of :func:`stroke_context`."""
    if not 0 < scale <= 1:
        raise DltoolsError(f"working scale must lie in (0, 1], got {scale}")
    full = image.shape[:2]
    valid = _valid_mask(image, None if nodata is None else ~_check_mask(nodata, full))
    if context is None and evidence.ndim == 2:

        def read(window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            rows, cols = window.toslices()
            return image[rows, cols], valid[rows, cols], evidence[rows, cols]

        layout = (full, image.shape[2], image.dtype)
        context = stroke_context(read, layout, n_classes, scale, params)
        if context is None:
            raise DltoolsError("there are no strokes to label from: draw at least one")
    small = working_shape(full, scale)
    work_valid = valid
    if small != full:
        image = resize_valid_area(image, small, valid)
        work_valid = working_valid_mask(valid, small)
    if evidence.shape[:2] != small:
        evidence_valid = valid if evidence.shape[:2] == full else np.ones(evidence.shape[:2], bool)
        evidence = _resize_evidence(evidence, small, n_classes, evidence_valid)
    posteriors = tiled_crf(
        image,
        evidence,
        n_classes,
        params,
        work_valid,
        workers=workers,
        progress=progress,
        context=context,
    )
    return upsample_labels(posteriors, valid, params.median_radius), posteriors


def upsample_labels(posteriors: np.ndarray, valid: np.ndarray, radius: int) -> np.ndarray:
    """Full-size (H, W) uint8 argmax of bilinearly upsampled posteriors, median filtered;
    :data:`NODATA` where ``valid`` (H, W) is False."""
    shape = valid.shape
    nodata = None if valid.all() else ~valid
    labels = np.empty(shape, np.uint8)
    for top in range(0, shape[0], _ROWS_PER_BAND):
        rows = slice(top, min(top + _ROWS_PER_BAND, shape[0]))
        band = _bilinear(posteriors, shape, (rows, slice(0, shape[1])))
        labels[rows] = np.argmax(band, axis=2)
    if nodata is not None:
        labels[nodata] = NODATA
    if radius > 0:
        filtered = cv2.medianBlur(labels, 2 * radius + 1)
        if nodata is not None:
            keep = filtered == NODATA
            filtered[keep] = labels[keep]
            filtered[nodata] = NODATA
        labels = filtered
    return labels


# ----------------------------------------------------------------------------- resampling


def confidence_map(posteriors: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32: the largest posterior of each pixel, upsampled from the working scale.

    Nodata pixels (all posteriors 0) do not pull their neighbours' confidence down (see
    :func:`dltools.engines.uncertainty.upsample`).
    """
    best = posteriors.max(axis=2).astype(np.float32)
    return np.clip(upsample(np.where(posteriors.sum(axis=2) > 0, best, np.nan), shape), 0.0, 1.0)


def _bilinear(grid: np.ndarray, shape: tuple[int, int], win: tuple[slice, slice]) -> np.ndarray:
    """The ``win`` part of ``grid`` (h, w, K) bilinearly resized to ``shape``; (rows, cols, K)."""

    def axis(n_in, n_out, part):
        pos = (np.arange(part.start, part.stop) + 0.5) * (n_in / n_out) - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        lo = np.floor(pos).astype(np.intp)
        return lo, np.minimum(lo + 1, n_in - 1), (pos - lo).astype(np.float32)

    y0, y1, fy = axis(grid.shape[0], shape[0], win[0])
    x0, x1, fx = axis(grid.shape[1], shape[1], win[1])
    rows = grid[y0] * (1 - fy)[:, None, None] + grid[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def resize_valid_area(
    image: np.ndarray, shape: tuple[int, int], valid: np.ndarray | None = None
) -> np.ndarray:
    """(H, W, C) -> (h, w, C) by area averaging over the ``valid`` pixels only; same dtype.

    Invalid pixels (their values may be anything, NaN included) do not leak into the result.
    """
    size = (shape[1], shape[0])
    dtype = image.dtype
    partial = valid is not None and not valid.all()
    if partial:
        image = np.where(valid[..., None], image, 0)
    if dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
        image = image.astype(np.float32)
    parts = [  # OpenCV's area resize takes at most 4 channels at a time
        cv2.resize(image[..., c : c + 4], size, interpolation=cv2.INTER_AREA).reshape(*shape, -1)
        for c in range(0, image.shape[2], 4)
    ]
    out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
    if partial:
        share = cv2.resize(valid.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        out = out / np.maximum(share, 1e-6)[..., None]
    if out.dtype != dtype:
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        out = out.astype(dtype)
    return out


def working_valid_mask(valid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Working-scale validity: at least half of the pixels under a working pixel are valid."""
    share = cv2.resize(valid.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return share >= 0.5


def _resize_evidence(
    evidence: np.ndarray, shape: tuple[int, int], n_classes: int, valid: np.ndarray
) -> np.ndarray:
    """Strokes (per-class pooling, so thin strokes survive) or probabilities, resized to ``shape``.

    A working pixel gets the stroke class covering most of it, if any stroke touches it.
    Probabilities are averaged over their known pixels; pixels with none stay unknown (0).
    Evidence on invalid pixels (``valid`` False, same grid as ``evidence``) is ignored.
    """
    size = (shape[1], shape[0])
    if evidence.ndim == 2:
        out = np.zeros(shape, np.uint8)
        best = np.zeros(shape, np.float32)
        for k in np.unique(evidence[(evidence > 0) & valid]):
            mask = ((evidence == k) & valid).astype(np.float32)
            share = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
            more = share > best
            out[more] = k
            np.maximum(best, share, out=best)
        return out
    known = known_evidence(evidence) & valid
    stack = np.concatenate([np.where(known[..., None], evidence, 0), known[..., None]], axis=2)
    stack = stack.astype(np.float32)
    if shape[0] * shape[1] < known.size:
        stack = resize_valid_area(stack, shape)
    else:
        stack = _bilinear(stack, shape, (slice(0, shape[0]), slice(0, shape[1])))
    total, weight = stack[..., :n_classes], stack[..., n_classes:]
    return np.where(weight > 0, total / np.maximum(weight, 1e-12), 0)


# ----------------------------------------------------------------------------- checks


def _as_hwc(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) -> (H, W, C); bool becomes uint8."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or 0 in image.shape:
        raise DltoolsError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    return image.view(np.uint8) if image.dtype == bool else image


def _valid_mask(image: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """``valid`` (default all True) and False where any band is not finite."""
    shape = image.shape[:2]
    valid = np.ones(shape, bool) if valid is None else _check_mask(valid, shape)
    if np.issubdtype(image.dtype, np.floating):
        valid = valid & np.isfinite(image).all(axis=2)
    return valid


def _check_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise DltoolsError(f"nodata mask has shape {mask.shape} but the image is {shape}")
    return mask


def _check_evidence(evidence: np.ndarray, shape: tuple[int, int], n_classes: int, what: str):
    """Raise :class:`DltoolsError` for strokes or probabilities that do not fit the image."""
    if n_classes < 2:
        raise DltoolsError(f"a CRF needs at least 2 classes, got {n_classes}")
    if n_classes >= NODATA:
        raise DltoolsError(f"at most {NODATA - 1} classes are supported, got {n_classes}")
    if evidence.shape[:2] != shape:
        raise DltoolsError(
            f"{what} have shape {evidence.shape[:2]} but the image is {shape}: "
            "they must cover the same pixels"
        )
    if evidence.ndim == 2:
        if not (np.issubdtype(evidence.dtype, np.integer) or evidence.dtype == bool):
            if np.any(evidence != np.round(evidence)):
                raise DltoolsError(f"{what} must hold whole class numbers")
        top, bottom = evidence.max(), evidence.min()
        if bottom < 0 or top > n_classes:
            raise DltoolsError(
                f"{what} hold class numbers {int(bottom)}..{int(top)}, but only 0 (none) and "
                f"1..{n_classes} exist: check the labels file matches the strokes"
            )
    elif evidence.ndim != 3 or evidence.shape[2] != n_classes:
        raise DltoolsError(f"{what} must be (h, w) strokes or (h, w, {n_classes}) probabilities")
