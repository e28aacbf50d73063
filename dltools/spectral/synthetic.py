"""A realistic synthetic hyperspectral scene: materials, patches, mixing, shading and noise.

Used by the tests and ``bench/spectral.py``. Deterministic for a seed; numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

WAVELENGTHS_NM = (400.0, 2500.0)  # the spectral range every scene samples evenly
PURE_ABUNDANCE = 0.6  # pixels whose dominant material covers less than this are unlabelled


@dataclass(frozen=True)
class SpectralScene:
    """One synthetic scene.

    cube: (H, W, B) float32 reflectance; labels: (H, W) uint8, k = material k (1-based), 0 where
    no material covers at least :data:`PURE_ABUNDANCE` of the pixel; abundances: (H, W, M)
    float32 summing to 1; illumination: (H, W) float32 brightness factor; endmembers: (M, B)
    float32 pure spectra; wavelengths: (B,) float32 nm.
    """

    cube: np.ndarray
    labels: np.ndarray
    abundances: np.ndarray
    illumination: np.ndarray
    endmembers: np.ndarray
    wavelengths: np.ndarray


def material_spectra(n_materials: int, n_bands: int, seed: int = 0) -> np.ndarray:
    """(M, B) float32 reflectance spectra in (0, 1) of distinct but overlapping materials.

    Each is a smooth continuum (a level, a slope and a sigmoid "edge" at a random wavelength)
    times a product of Gaussian absorption bands, two of which all materials share (like
    atmospheric water features). Materials come in look-alike pairs (2k, 2k + 1), like dry and
    wet sand: the second has the first's continuum and bands, 55-75% of its brightness, and one
    band of its own. Under varying illumination a pair differs by shape, not by brightness.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n_bands, dtype=np.float64)  # normalised wavelength
    shared = [(rng.uniform(0.1, 0.9), rng.uniform(0.02, 0.06), rng.uniform(0.1, 0.3)) for _ in "ab"]
    spectra = []
    for m in range(n_materials):
        if m % 2 == 0:
            edge = rng.uniform(0.0, 0.3) / (1 + np.exp(-(t - rng.uniform(0.2, 0.7)) / 0.03))
            continuum = rng.uniform(0.2, 0.45) + rng.uniform(-0.15, 0.15) * (t - 0.5) + edge
            features = shared + [
                (rng.uniform(0, 1), rng.uniform(0.01, 0.08), rng.uniform(0.15, 0.5)) for _ in "abc"
            ]
        else:
            continuum = continuum * rng.uniform(0.55, 0.75)
            features = [
                *features,
                (rng.uniform(0, 1), rng.uniform(0.02, 0.06), rng.uniform(0.15, 0.3)),
            ]
        absorption = np.ones_like(t)
        for centre, width, depth in features:
            absorption *= 1 - depth * np.exp(-0.5 * ((t - centre) / width) ** 2)
        spectra.append(continuum * absorption)
    return np.clip(np.array(spectra), 0.01, 0.99).astype(np.float32)


def spectral_scene(
    height: int = 96,
    width: int = 96,
    n_bands: int = 120,
    n_materials: int = 6,
    seed: int = 0,
    patch_size: float = 16.0,
    mixing_px: float = 1.5,
    illumination: tuple[float, float] = (0.4, 1.2),
    noise: float = 0.004,
    endmembers: np.ndarray | None = None,
) -> SpectralScene:
    """A scene of ``n_materials`` materials in irregular patches about ``patch_size`` px across.

    Patches are Voronoi cells of random seeds with warped (noisy) boundaries; every material
    gets several. Boundaries are linear mixtures (abundances blurred over ``mixing_px`` px).
    Each pixel's spectrum is ``illumination * (abundances @ endmembers) + noise``: a smooth
    shading field spanning ``illumination`` (min, max) scales whole spectra (topography,
    shadows), and ``noise`` is the standard deviation of white Gaussian sensor noise.
    ``endmembers`` ((M, B) spectra, default :func:`material_spectra` of ``seed``) gives
    another scene of the same materials.
    """
    rng = np.random.default_rng(seed)
    if endmembers is None:
        endmembers = material_spectra(n_materials, n_bands, seed)
    n_materials, n_bands = endmembers.shape
    n_seeds = max(n_materials, round(height * width / patch_size**2))
    owners = np.concatenate([np.arange(n_materials), rng.integers(0, n_materials, n_seeds)])
    points = rng.uniform([0, 0], [height, width], size=(len(owners), 2))
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    warp = patch_size * 0.3
    rows = rows + warp * _smooth_noise(rng, (height, width), patch_size / 2)
    cols = cols + warp * _smooth_noise(rng, (height, width), patch_size / 2)
    _, nearest = cKDTree(points).query(np.stack([rows.ravel(), cols.ravel()], axis=-1))
    material = owners[nearest].reshape(height, width)
    onehot = np.eye(n_materials, dtype=np.float32)[material]
    abundances = ndimage.gaussian_filter(onehot, sigma=(mixing_px, mixing_px, 0), mode="nearest")
    abundances /= abundances.sum(axis=-1, keepdims=True)
    low, high = illumination
    shade = _smooth_noise(rng, (height, width), patch_size / 2)
    shade = low + (high - low) * (shade - shade.min()) / max(np.ptp(shade), 1e-12)
    cube = (shade[..., None] * (abundances @ endmembers)).astype(np.float32)
    cube += np.float32(noise) * rng.standard_normal(cube.shape, dtype=np.float32)
    labels = np.where(abundances.max(axis=-1) >= PURE_ABUNDANCE, abundances.argmax(axis=-1) + 1, 0)
    return SpectralScene(
        cube=np.clip(cube, 0.0, None, out=cube),
        labels=labels.astype(np.uint8),
        abundances=abundances.astype(np.float32),
        illumination=shade.astype(np.float32),
        endmembers=endmembers,
        wavelengths=np.linspace(*WAVELENGTHS_NM, n_bands, dtype=np.float32),
    )


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """(H, W) float64 Gaussian-filtered white noise with unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=scale / 2, mode="wrap")
    return (field - field.mean()) / max(field.std(), 1e-12)


@dataclass(frozen=True)
class SpectraSet:
    """A small labelled set of spectra without a grid (like a table of measured spectra).

    spectra: (n, B) float32; labels: (n,) int64 class values 1..K; shifts: (n,) float32 the
    bands each spectrum was moved by; templates: (K, B) float32 each class's spectrum unshifted,
    at unit gain and without noise.
    """

    spectra: np.ndarray
    labels: np.ndarray
    shifts: np.ndarray
    templates: np.ndarray


def light_sources(
    n_classes: int = 7,
    n_bands: int = 480,
    per_class: tuple[int, int] = (20, 80),
    max_shift: float = 8.0,
    seed: int = 0,
    noise: float = 0.02,
) -> SpectraSet:
    """Spectra of ``n_classes`` light sources of one family, ``per_class`` (min, max) of each.

    All sources share a broad continuum of two wide humps (like the phosphors of white LEDs)
    whose heights and positions vary from sample to sample far more than between sources
    (+-50% in height, +-12 bands in position); what tells them apart are 2-4 narrow emission
    lines (1-3 bands wide, a fifth to a half of the continuum's height) and an occasional
    absorption dip. Sources come in look-alike pairs (2k, 2k + 1) sharing all but one line,
    which the second moves by 10-30 bands. Each sample moves the whole spectrum by a random
    0..``max_shift`` bands (uncalibrated instruments), varies each line's strength by +-30%,
    multiplies everything by a gain in [0.5, 1.5], adds an offset in [0, 0.05] and white noise
    of standard deviation ``noise`` (the continuum peaks near 1).
    """
    rng = np.random.default_rng(seed)
    bands = np.arange(n_bands, dtype=np.float64)
    humps = [(0.3 * n_bands, 0.06 * n_bands, 0.6), (0.6 * n_bands, 0.15 * n_bands, 0.9)]
    sources = []
    for k in range(n_classes):
        if k % 2 == 0:
            lines = [
                (rng.uniform(0.05, 0.95) * n_bands, rng.uniform(1.0, 3.0), rng.uniform(0.2, 0.5))
                for _ in range(rng.integers(2, 5))
            ]
            dips = [
                (rng.uniform(0.1, 0.9) * n_bands, rng.uniform(3.0, 8.0), rng.uniform(0.2, 0.4))
                for _ in range(rng.integers(0, 2))
            ]
        else:
            moved = rng.integers(len(lines))
            centre = lines[moved][0] + rng.choice([-1, 1]) * rng.uniform(10, 30)
            lines = [*lines[:moved], (centre, *lines[moved][1:]), *lines[moved + 1 :]]
        sources.append((lines, dips))

    def spectrum(source, shift, hump_scale, hump_move, line_scale):
        lines, dips = source
        x = np.zeros(n_bands)
        for (centre, width, height), scale, move in zip(humps, hump_scale, hump_move, strict=True):
            x += height * scale * np.exp(-0.5 * ((bands - centre - move - shift) / width) ** 2)
        for (centre, width, height), scale in zip(lines, line_scale, strict=False):
            x += height * scale * np.exp(-0.5 * ((bands - centre - shift) / width) ** 2)
        for centre, width, depth in dips:
            x *= 1 - depth * np.exp(-0.5 * ((bands - centre - shift) / width) ** 2)
        return x

    templates = np.array(
        [spectrum(s, 0.0, np.ones(2), np.zeros(2), np.ones(4)) for s in sources], np.float32
    )
    counts = rng.integers(per_class[0], per_class[1] + 1, n_classes)
    labels = np.repeat(np.arange(1, n_classes + 1), counts)
    shifts = rng.uniform(0.0, max_shift, len(labels))
    spectra = np.array(
        [
            spectrum(
                sources[label - 1],
                shift,
                rng.uniform(0.5, 1.5, 2),
                rng.uniform(-12, 12, 2),
                rng.uniform(0.7, 1.3, 4),
            )
            for label, shift in zip(labels, shifts, strict=True)
        ]
    )
    n = len(labels)
    spectra = spectra * rng.uniform(0.5, 1.5, (n, 1)) + rng.uniform(0, 0.05, (n, 1))
    spectra += noise * rng.standard_normal(spectra.shape)
    return SpectraSet(
        spectra=spectra.astype(np.float32),
        labels=labels.astype(np.int64),
        shifts=shifts.astype(np.float32),
        templates=templates,
    )
