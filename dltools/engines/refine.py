"""Turning tile predictions into pixel labels (step 6): a dense CRF, or a per-image MLP / random
forest (CNN-Supervised Classification, Carbonneau et al. 2020).

The evidence is a grid of class probabilities at the *working scale* (each working pixel holds
the probabilities of the tile that covers it; NaN or all-zero rows are unknown). Every refiner
works at that scale and returns posteriors there; the full-size class map is their bilinear
upsampling, argmax and median filter (as for step 2's CRF).

- ``crf``: the step-2 engine (:func:`dltools.engines.crf.label_from_probs`) trusts the evidence with
  ``gt_prob`` and lets colour and position decide where the tile labels stop.
- ``mlp`` / ``rf``: a classifier trained on this image's own pixels, with the evidence as
  targets, then applied to every working pixel. Features (:func:`pixel_features`) are the
  median-filtered, standardised bands, their local mean and a local standard deviation
  (texture) at two window sizes. At most :data:`MAX_SAMPLES` pixels train it, so a 36 MP
  image costs seconds.
"""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.neural_network import MLPClassifier

from dltools.engines.crf import (
    CRFParams,
    known_evidence,
    label_from_probs,
    resize_valid_area,
    upsample_labels,
    working_shape,
    working_valid_mask,
)
from dltools.errors import DltoolsError
from dltools.progress import Progress, quiet

REFINERS = ("crf", "mlp", "rf")  # plus "none" in dltools.pipeline.segment: the raw tile map
# the default: above the CRF over 5 folds of both shared sets at the default tile size (README)
DEFAULT_REFINER = "mlp"
MAX_SAMPLES = 60_000  # training pixels of the per-image classifiers
TEXTURE_WINDOWS = (3, 7)  # local standard deviation windows, in working pixels
CONTEXT_WINDOW = 5  # local mean window, in working pixels
_CHUNK = 1 << 19  # working pixels classified at a time


def _standardise(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(h, w, F) float32 with each channel at mean 0, std 1 over ``valid`` pixels; 0 elsewhere."""
    sample = values[valid]
    mean = sample.mean(axis=0) if sample.size else 0.0
    std = sample.std(axis=0) if sample.size else 1.0
    out = (values - mean) / np.where(std > 0, std, 1.0)
    out[~valid] = 0
    return out.astype(np.float32)


def pixel_features(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel features of an (h, w, C) image of any dtype -> (h, w, 2C + 2) float32.

    Channels: each band standardised and median-filtered (3 x 3); each band's mean over
    :data:`CONTEXT_WINDOW`; the standard deviation of the band average over each of
    :data:`TEXTURE_WINDOWS`. Every feature is standardised over the ``valid`` (h, w) pixels
    and 0 elsewhere.
    """
    bands = np.asarray(image, dtype=np.float32)
    bands = bands[..., None] if bands.ndim == 2 else bands
    finite = np.isfinite(bands).all(axis=2)
    valid = finite if valid is None else valid & finite
    bands = _standardise(np.nan_to_num(bands), valid)
    planes = [np.ascontiguousarray(bands[..., c]) for c in range(bands.shape[2])]
    channels = [cv2.medianBlur(plane, 3) for plane in planes]
    channels += [cv2.blur(plane, (CONTEXT_WINDOW, CONTEXT_WINDOW)) for plane in planes]
    grey = bands.mean(axis=2)
    for size in TEXTURE_WINDOWS:
        mean = cv2.blur(grey, (size, size))
        channels.append(np.sqrt(np.maximum(cv2.blur(grey * grey, (size, size)) - mean * mean, 0)))
    return _standardise(np.stack(channels, axis=2), valid)


def pixel_classifier(method: str, seed: int = 0, workers: int | None = None):
    """An unfitted scikit-learn classifier for ``method`` ``"mlp"`` or ``"rf"``."""
    if method == "mlp":
        return MLPClassifier(
            hidden_layer_sizes=(32, 32),
            early_stopping=True,
            max_iter=200,
            tol=1e-3,
            random_state=seed,
        )
    if method == "rf":
        return RandomForestClassifier(
            n_estimators=50,
            min_samples_leaf=5,
            max_depth=20,
            n_jobs=-1 if workers is None else workers,  # None: all cores
            random_state=seed,
        )
    raise ValueError(f"unknown pixel classifier {method!r}")


def classify_pixels(
    features: np.ndarray,
    targets: np.ndarray,
    n_classes: int,
    method: str,
    valid: np.ndarray,
    seed: int = 0,
    workers: int | None = None,
) -> np.ndarray:
    """Train on the pixels with a target, then give every valid pixel class probabilities.

    ``features``: (h, w, F) float32; ``targets``: (h, w) int, 0-based class or -1 = none;
    ``valid``: (h, w) bool. At most :data:`MAX_SAMPLES` random target pixels train the
    classifier. Returns (h, w, n_classes) float32, 0 at invalid pixels. With a single
    target class every valid pixel gets that class.
    """
    h, w, n_features = features.shape
    known = np.flatnonzero((targets >= 0) & valid)
    if not known.size:
        raise DltoolsError("no pixel has a tile label to learn from: lower PROB_THRES or DECIM")
    flat_targets = targets.reshape(-1)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(known, min(MAX_SAMPLES, known.size), replace=False))
    out = np.zeros((h * w, n_classes), np.float32)
    pixels = np.flatnonzero(valid)
    classes = np.unique(flat_targets[sample])
    if classes.size == 1:
        out[pixels, classes[0]] = 1
        return out.reshape(h, w, n_classes)
    flat = features.reshape(-1, n_features)
    model = pixel_classifier(method, seed, workers).fit(flat[sample], flat_targets[sample])
    for start in range(0, pixels.size, _CHUNK):
        chunk = pixels[start : start + _CHUNK]
        out[np.ix_(chunk, model.classes_)] = model.predict_proba(flat[chunk])
    return out.reshape(h, w, n_classes)


def refine(
    image: np.ndarray,
    evidence: np.ndarray,
    method: str = "crf",
    scale: float = 0.25,
    crf: CRFParams | None = None,
    nodata: np.ndarray | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: Progress = quiet,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel labels of ``image`` from tile evidence, by ``method`` (one of :data:`REFINERS`).

    ``image``: (H, W, C) any dtype; ``evidence``: (h, w, K) float32 class probabilities at
    :func:`working_shape` (NaN or all-zero rows unknown); ``crf``: the CRF settings (default
    :class:`CRFParams`; its ``gt_prob`` is the confidence in the tiles, its ``median_radius``
    also smooths the classifiers' maps); ``nodata``: (H, W) bool. Returns (class map (H, W)
    uint8, 0-based, :data:`dltools.engines.crf.NODATA` at nodata; posteriors (h, w, K) float32 at
    working scale).
    """
    if method not in REFINERS:
        raise ValueError(f"unknown refiner {method!r}; expected one of {REFINERS}")
    crf = CRFParams() if crf is None else crf
    image = image[..., None] if image.ndim == 2 else image
    full = image.shape[:2]
    small = working_shape(full, scale)
    if evidence.shape[:2] != small:
        raise ValueError(f"evidence is {evidence.shape[:2]}, the working grid is {small}")
    if not known_evidence(evidence).any():
        raise DltoolsError("no tile is confident enough to label from: lower PROB_THRES (or DECIM)")
    n_classes = evidence.shape[2]
    if method == "crf":
        return label_from_probs(
            image, evidence, n_classes, scale, crf, nodata, workers=workers, progress=progress
        )
    valid = np.ones(full, bool) if nodata is None else ~np.asarray(nodata, bool)
    if np.issubdtype(image.dtype, np.floating):
        valid &= np.isfinite(image).all(axis=2)
    work = image if small == full else resize_valid_area(image, small, valid)
    work_valid = valid if small == full else working_valid_mask(valid, small)
    targets = np.where(known_evidence(evidence), np.nan_to_num(evidence).argmax(axis=2), -1)
    posteriors = classify_pixels(
        pixel_features(work, work_valid),
        targets,
        n_classes,
        method,
        work_valid,
        seed=seed,
        workers=workers,
    )
    return upsample_labels(posteriors, valid, crf.median_radius), posteriors
