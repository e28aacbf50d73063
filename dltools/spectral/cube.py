"""Spectral cubes on disk: reading, pre-processing and streaming pixels window by window.

A cube is ``rows x cols x bands``: a multi-band GeoTIFF (any GDAL raster), a ``.mat`` file (a
named or the only 3-D variable) or a ``.npy`` file (memory-mapped). Pixels are processed in
windows of a few hundred rows and columns, so a cube never has to fit in memory. Spectra are
``(n, B)`` float32 arrays; the pre-processing applied to them (:class:`Scaling`) is saved with
every model.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from rasterio.transform import Affine

from dltools.errors import DltoolsError
from dltools.io.cog import open_cog_writer
from dltools.io.geo import (
    Window,
    open_raster,
    open_raster_writer,
    read_nodata_mask,
    read_raster,
    write_window,
)
from dltools.io.labels import Classes
from dltools.progress import Progress, quiet
from dltools.raster.windows import iter_windows
from dltools.scale.executor import Executor, InProcess
from dltools.spectral.options import BLOCK, SCALINGS

MINMAX_OFFSET = 1e-3  # deephyp's per-spectrum min-max: (x - (min(x) - 1e-3)) / max(x)


@dataclass(frozen=True)
class Cube:
    """A raster of ``shape = (rows, cols, bands)`` on disk, read window by window.

    ``profile`` is the grid for outputs (``width, height, crs, transform``; a GeoTIFF's own
    profile, or no CRS and an identity transform for arrays). ``array`` holds the data of
    ``.npy`` (memory-mapped) and ``.mat`` files; rasters are read from ``path``.
    """

    path: Path
    shape: tuple[int, int, int]
    profile: dict
    array: np.ndarray | None = None

    @property
    def bands(self) -> int:
        return self.shape[2]

    def windows(self, block: int = BLOCK) -> list[Window]:
        """Row-major windows of at most ``block`` x ``block`` pixels covering the cube."""
        return list(iter_windows(self.shape[0], self.shape[1], block))

    def read(self, window: Window | None = None) -> np.ndarray:
        """The ``(h, w, bands)`` pixels of ``window`` (default: all) as float32."""
        if self.array is None:
            return read_raster(self.path, window).astype(np.float32, copy=False)
        rows, cols = _slices(window, self.shape)
        pixels = np.asarray(self.array[rows, cols], dtype=np.float32)
        return pixels.reshape(*pixels.shape[:2], self.bands)  # one-band (h, w) arrays too

    def valid(self, window: Window | None = None) -> np.ndarray:
        """``(h, w)`` bool: False where a GeoTIFF marks the pixel as nodata."""
        if self.array is None:
            return ~read_nodata_mask(self.path, window)
        rows, cols = _slices(window, self.shape)
        return np.ones((rows.stop - rows.start, cols.stop - cols.start), bool)


def _slices(window: Window | None, shape: tuple[int, ...]) -> tuple[slice, slice]:
    if window is None:
        return slice(0, shape[0]), slice(0, shape[1])
    row, col = int(window.row_off), int(window.col_off)
    return slice(row, row + int(window.height)), slice(col, col + int(window.width))


def _load_array(path: Path, variable: str | None, ndims: tuple[int, ...]) -> np.ndarray:
    """The array of a ``.npy`` (memory-mapped) or ``.mat`` file, with ``ndim`` in ``ndims``."""
    if not path.is_file():
        raise DltoolsError(f"{path}: file not found")
    what = "rows x cols x bands" if ndims == (3,) else "rows x cols"
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise DltoolsError(f"{path}: cannot read this .npy file ({err})") from err
        name = "the array"
    else:
        try:
            contents = scipy.io.loadmat(path)
        except NotImplementedError as err:
            raise DltoolsError(
                f"{path}: MATLAB v7.3 (HDF5) files are not supported; save it with "
                "save(..., '-v7') or convert the cube to .npy or GeoTIFF"
            ) from err
        except (OSError, ValueError) as err:
            raise DltoolsError(f"{path}: cannot read this .mat file ({err})") from err
        arrays = {k: v for k, v in contents.items() if not k.startswith("__")}
        if variable is None:
            candidates = [k for k, v in arrays.items() if np.ndim(v) in ndims]
            if len(candidates) != 1:
                raise DltoolsError(
                    f"{path}: expected exactly one {what} array, found {candidates or 'none'} "
                    f"among variables {sorted(arrays)}; name one with --variable"
                )
            variable = candidates[0]
        if variable not in arrays:
            raise DltoolsError(f"{path}: no variable {variable!r}; the file holds {sorted(arrays)}")
        array, name = arrays[variable], f"variable {variable!r}"
    if array.ndim not in ndims:
        raise DltoolsError(f"{path}: {name} has shape {array.shape}, expected {what}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DltoolsError(f"{path}: {name} holds {array.dtype}, expected numbers")
    return array


def open_cube(path: str | os.PathLike, variable: str | None = None) -> Cube:
    """Open a ``.npy``, ``.mat`` (``variable`` or the only 3-D one) or GDAL raster cube."""
    path = Path(path)
    if path.suffix.lower() in {".npy", ".mat"}:
        array = _load_array(path, variable, (3,))
        height, width = array.shape[:2]
        profile = {"width": width, "height": height, "crs": None, "transform": Affine.identity()}
        return Cube(path, array.shape, profile, array)
    with open_raster(path) as src:
        profile = dict(src.profile)
    return Cube(path, (profile["height"], profile["width"], profile["count"]), profile)


def open_labels(path: str | os.PathLike, cube: Cube, variable: str | None = None) -> Cube:
    """Open a one-band label raster (GDAL, ``.npy`` or ``.mat``) on the grid of ``cube``.

    Values <= 0 (and nodata, NaN) are background: not a class and not trained on.
    """
    path = Path(path)
    if path.suffix.lower() in {".npy", ".mat"}:
        array = _load_array(path, variable, (2, 3))
        labels = Cube(path, (*array.shape[:2], 1 if array.ndim == 2 else array.shape[2]), {}, array)
    else:
        labels = open_cube(path)
    if labels.bands != 1:
        raise DltoolsError(f"{path}: a label raster has one band, this one has {labels.bands}")
    if labels.shape[:2] != cube.shape[:2]:
        raise DltoolsError(
            f"{path} is {labels.shape[0]} x {labels.shape[1]} pixels but the cube {cube.path} "
            f"is {cube.shape[0]} x {cube.shape[1]}; labels must be on the cube's pixel grid"
        )
    return labels


def read_label_values(labels: Cube, window: Window | None = None) -> np.ndarray:
    """``(h, w)`` int64 label values of ``window``; nodata and NaN become 0 (background)."""
    values = labels.read(window)[..., 0]
    values = np.where(np.isfinite(values) & labels.valid(window), values, 0)
    return np.rint(values).astype(np.int64)


def read_spectra(cube: Cube, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The valid pixels of ``window``: ``(spectra (n, B) float32, mask (h, w) bool)``.

    ``mask`` is True for the n pixels returned (row-major). NaN or infinite values in a valid
    pixel are an error: mark such pixels as nodata (in a GeoTIFF) or fix the cube.
    """
    pixels = cube.read(window)
    mask = cube.valid(window)
    spectra = pixels[mask]
    finite = np.isfinite(spectra).all(axis=1)
    if not finite.all():
        row, col = np.argwhere(mask)[np.argmin(finite)]
        if window is not None:
            row, col = row + int(window.row_off), col + int(window.col_off)
        raise DltoolsError(
            f"{cube.path}: pixel (row {row}, col {col}) holds NaN or infinite values; replace "
            "them, or save the cube as a GeoTIFF whose nodata value marks such pixels"
        )
    return spectra, mask


def minmax_spectra(spectra: np.ndarray) -> np.ndarray:
    """deephyp's per-spectrum scaling ``(x - (min(x) - 1e-3)) / max(x)``, (n, B) -> float32.

    A spectrum whose maximum is not positive is divided by 1 instead.
    """
    spectra = np.asarray(spectra, np.float32)
    low = spectra.min(axis=1, keepdims=True) - np.float32(MINMAX_OFFSET)
    high = spectra.max(axis=1, keepdims=True)
    return (spectra - low) / np.where(high > 0, high, np.float32(1))


@dataclass(frozen=True)
class Scaling:
    """Pre-processing of spectra: ``minmax`` (per spectrum), ``standard`` or ``none``.

    ``standard`` subtracts the per-band ``mean`` and divides by the per-band ``std`` (both
    (B,) float64, fitted on the training cube with :func:`fit_scaling`).
    """

    method: str
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def __call__(self, spectra: np.ndarray) -> np.ndarray:
        """(n, B) spectra -> (n, B) float32 network inputs."""
        if self.method == "minmax":
            return minmax_spectra(spectra)
        spectra = np.asarray(spectra, np.float32)
        if self.method == "standard":
            return ((spectra - self.mean) / self.std).astype(np.float32)
        return spectra

    def to_dict(self) -> dict:
        as_list = {
            k: None if v is None else v.tolist()
            for k, v in (("mean", self.mean), ("std", self.std))
        }
        return {"method": self.method, **as_list}

    @classmethod
    def from_dict(cls, saved: Mapping) -> Scaling:
        arrays = {
            k: None if saved.get(k) is None else np.asarray(saved[k]) for k in ("mean", "std")
        }
        return cls(saved["method"], **arrays)


def fit_scaling(source: Cube | np.ndarray, method: str, block: int = BLOCK) -> Scaling:
    """The :class:`Scaling` ``method`` for a cube or for (n, B) spectra.

    ``standard`` fits the per-band mean and standard deviation over every valid pixel of a
    cube (one pass, window by window) or over the given spectra.
    """
    if method not in SCALINGS:
        raise DltoolsError(f"unknown scaling {method!r}; choose one of {', '.join(SCALINGS)}")
    if method != "standard":
        return Scaling(method)
    if isinstance(source, Cube):
        parts = (read_spectra(source, window)[0] for window in source.windows(block))
        bands, where = source.bands, f"{source.path}: every pixel is nodata"
    else:
        parts, bands, where = [source], source.shape[1], "no spectra to fit the scaling on"
    count, total, squares = 0, np.zeros(bands), np.zeros(bands)
    for spectra in parts:
        spectra = np.asarray(spectra, np.float64)
        count += len(spectra)
        total += spectra.sum(axis=0)
        squares += np.square(spectra).sum(axis=0)
    if count == 0:
        raise DltoolsError(where)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0))
    return Scaling(method, mean, np.where(std > 0, std, 1.0))


def holdout_mask(window: Window, width: int, fraction: float, seed: int) -> np.ndarray:
    """``(h, w)`` bool: True for the pixels of ``window`` held out for validation.

    A pixel is held out with probability ``fraction``, decided by a hash of its position in a
    raster ``width`` pixels wide and ``seed``, so the split is the same for any windowing.
    """
    rows = np.arange(int(window.row_off), int(window.row_off + window.height), dtype=np.uint64)
    cols = np.arange(int(window.col_off), int(window.col_off + window.width), dtype=np.uint64)
    z = rows[:, None] * np.uint64(width) + cols[None, :]
    z += np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64)
    with np.errstate(over="ignore"):  # splitmix64: multiplications wrap around by design
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 < fraction


def pixel_batches(
    cube: Cube,
    scaling: Scaling,
    batch_size: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    block: int = BLOCK,
    buffer_windows: int = 4,
) -> Iterator[np.ndarray]:
    """Shuffled batches of scaled spectra, read from disk ``buffer_windows`` windows at a time.

    Yields (n, B) float32 batches of every valid pixel, each exactly once per epoch, in an
    order that depends on ``seed`` and ``epoch``. The last batch may be smaller.
    """
    rng = np.random.default_rng([seed, epoch])
    windows = cube.windows(block)
    windows = [windows[i] for i in rng.permutation(len(windows))]
    pending = np.zeros((0, cube.bands), np.float32)
    for start in range(0, len(windows), buffer_windows):
        parts = [read_spectra(cube, w)[0] for w in windows[start : start + buffer_windows]]
        x = np.concatenate([pending, *parts])
        x = x[rng.permutation(len(x))]
        last = start + buffer_windows >= len(windows)
        ready = len(x) if last else len(x) - len(x) % batch_size
        for b in range(0, ready, batch_size):
            yield scaling(x[b : min(b + batch_size, ready)])
        pending = x[ready:]


@dataclass(frozen=True)
class RasterOutput:
    """One output GeoTIFF of :func:`map_pixels`: ``bands`` of ``dtype``, ``fill`` where no data;
    with ``classes`` (a one-band class raster, value k = ``classes.names[k - 1]``), a styled
    COG (:func:`dltools.io.cog.open_cog_writer`)."""

    path: Path
    bands: int
    dtype: str
    fill: float
    classes: Classes | None = None

    def open(self, like: dict):
        """The writer of this output on the grid of ``like`` (a context manager)."""
        if self.classes is not None:
            return open_cog_writer(self.path, like, self.dtype, self.fill, self.classes)
        return open_raster_writer(self.path, like, self.bands, self.dtype, self.fill)


@dataclass(frozen=True)
class PixelWindow:
    """One unit of work of :func:`map_pixels`: ``function`` applied to one window's pixels.

    The pixels are read from ``cube`` where the unit runs (a raster on disk), or were read
    by the caller into ``pixels`` (``(spectra, mask)``, as :func:`read_spectra` returns).
    """

    window: Window
    function: Callable[[np.ndarray], Mapping[str, np.ndarray]]
    outputs: tuple[tuple[str, int, str, float], ...]  # (name, bands, dtype, fill)
    cube: Cube | None = None
    pixels: tuple[np.ndarray, np.ndarray] | None = None


def map_window(
    unit: PixelWindow,
) -> tuple[Window, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run one :class:`PixelWindow`: ``(window, {output name: (h, w, bands) image},
    {other name: the window's total})``; outputs hold their ``fill`` at nodata pixels."""
    spectra, mask = unit.pixels if unit.cube is None else read_spectra(unit.cube, unit.window)
    results = unit.function(spectra)
    images = {}
    for name, bands, dtype, fill in unit.outputs:
        image = np.full((*mask.shape, bands), fill, dtype)
        image[mask] = np.asarray(results[name]).reshape(len(spectra), bands)
        images[name] = image
    totals = {name: np.asarray(value) for name, value in results.items() if name not in images}
    return unit.window, images, totals


def map_pixels(
    cube: Cube,
    function: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    outputs: Mapping[str, RasterOutput],
    block: int = 512,
    progress: Progress = quiet,
    executor: Executor | None = None,
) -> dict[str, np.ndarray]:
    """Apply ``function`` to the spectra of every window and write its results as GeoTIFFs.

    ``function`` maps (n, B) float32 spectra (unscaled) to ``{name: array}``. The values of
    each name in ``outputs``, ``(n, bands)``, go to that GeoTIFF on the cube's grid (CRS and
    transform kept), with ``fill`` (also the GeoTIFF nodata value) at nodata pixels; any other
    name is a per-window total (e.g. counts), and their sums over the windows are returned.
    ``progress`` follows the pixels, window by window. Files appear only when all are complete.

    ``executor`` runs the windows (default: here, one after the other). On a Dask cluster
    ``function`` must pickle (see :class:`dltools.spectral.inference.OnWorker`); a raster cube
    is read window by window on the workers, an array cube (``.npy``, ``.mat``) here. At most
    a fixed number of windows are in flight, so this process's memory stays bounded.
    """
    executor = InProcess() if executor is None else executor
    specs = tuple((name, out.bands, out.dtype, out.fill) for name, out in outputs.items())
    read_here = executor.remote and cube.array is not None

    def units() -> Iterable[PixelWindow]:
        for window in cube.windows(block):
            pixels = read_spectra(cube, window) if read_here else None
            yield PixelWindow(window, function, specs, None if read_here else cube, pixels)

    totals: dict[str, np.ndarray] = {}
    with contextlib.ExitStack() as stack:
        writers = {
            name: stack.enter_context(out.open(cube.profile)) for name, out in outputs.items()
        }
        pixels = cube.shape[0] * cube.shape[1]
        done = executor.map_unordered(map_window, units())
        done = progress(done, total=pixels, desc="pixels", unit="px", count=_finished_area)
        for _, (window, images, sums) in done:
            for name, image in images.items():
                write_window(writers[name], image, window)
            for name, value in sums.items():
                totals[name] = totals[name] + value if name in totals else value
    return totals


def _finished_area(done: tuple[int, tuple[Window, dict, dict]]) -> int:
    window = done[1][0]
    return window.width * window.height


def read_overview(path: str | os.PathLike, longest: int = 1600) -> np.ndarray:
    """A raster decimated so its longest side is at most ``longest`` px: (h, w, C) as stored."""
    with open_raster(path) as src:
        factor = max(1.0, max(src.height, src.width) / longest)
        shape = (src.count, max(1, round(src.height / factor)), max(1, round(src.width / factor)))
        return np.moveaxis(src.read(out_shape=shape), 0, -1)
