"""Class rasters -> polygons, window by window, merged exactly across window edges.

A class raster holds label values ``k > 0`` (0 = no class). Each 4-connected region of one
value becomes one polygon (holes kept), as GDAL's polygonize makes it for the whole raster,
but the raster is read in windows of ``window`` x ``window`` pixels, so memory stays bounded
whatever its size:

1. Optional sieving (:func:`rasterio.features.sieve`): regions of fewer than ``min_pixels``
   pixels take the value of their largest neighbour. Each window is sieved with a margin of
   ``min(min_pixels, window // 2)`` pixels of context, so a region is measured whole whenever
   it fits in that margin.
2. Each window's regions are labelled (:func:`skimage.measure.label`) and polygonised
   (:func:`rasterio.features.shapes`) in *pixel coordinates* (x = column, y = row), which are
   whole numbers, so a corner shared by two windows has exactly the same coordinates in both.
3. Polygons that touch no inner window edge are final and are yielded window by window.
   Those that do are pieces: at the end the pieces of each value are unioned
   (:func:`shapely.union_all`) and split into their polygons, so a region cut by window
   edges comes out as the one polygon a whole-raster run gives (pieces that meet only at a
   corner stay apart, as 4-connectivity wants). Only pieces are held in memory.

Pixel counts, areas and confidence sums are accumulated per region from the pixels (exact
whatever the window size); :func:`to_map` moves pixel coordinates onto a raster's grid.

Memory: one window's arrays (about 20 bytes per pixel) plus the pieces; the final union needs
memory in proportion to the vertices of the largest merged polygon (GEOS overlay), so a
single region spanning a huge raster with millions of vertices costs the most
(``bench/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
from rasterio.transform import Affine
from skimage.measure import label as connected_regions

from dltools.raster.windows import Window, iter_windows

WINDOW = 4096  # default window side, pixels

Reader = Callable[[Window], np.ndarray]  # window -> (h, w) array of that window


@dataclass
class Polygons:
    """A batch of polygons with their per-region statistics (all arrays of length N).

    ``geometry`` (N,) object shapely Polygons in pixel coordinates; ``value`` (N,) int64
    label values; ``pixels`` (N,) int64 pixel counts; ``area`` (N,) float64 sums of the
    pixels' areas (see :func:`polygonize`); ``confidence`` (N,) float64 mean confidence of
    the region's pixels (NaN without a confidence raster or finite values).
    """

    geometry: np.ndarray
    value: np.ndarray
    pixels: np.ndarray
    area: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return len(self.geometry)


@dataclass
class _Pieces:
    """Polygons cut by inner window edges, with their sums, waiting to be merged."""

    geometry: list
    value: list
    pixels: list
    area: list
    conf_sum: list
    conf_count: list

    def add(self, batch: dict[str, np.ndarray], keep: np.ndarray) -> None:
        for name in ("geometry", "value", "pixels", "area", "conf_sum", "conf_count"):
            getattr(self, name).append(batch[name][keep])

    def merged(self) -> Polygons:
        """Union the pieces of each value; sum their statistics into the merged polygons."""
        cat = {name: np.concatenate(getattr(self, name)) for name in vars(self)}
        parts, values, owner = [], [], np.empty(len(cat["geometry"]), np.intp)
        for value in np.unique(cat["value"]):
            chosen = np.flatnonzero(cat["value"] == value)
            union = shapely.get_parts(shapely.union_all(cat["geometry"][chosen]))
            tree = shapely.STRtree(union)
            inside, hit = tree.query(shapely.point_on_surface(cat["geometry"][chosen]), "within")
            owner[chosen[inside]] = len(parts) + hit
            parts.extend(union)
            values.extend([value] * len(union))

        def total(name: str) -> np.ndarray:
            return np.bincount(owner, weights=cat[name], minlength=len(parts))

        return Polygons(
            geometry=np.array(parts, dtype=object),
            value=np.array(values, np.int64),
            pixels=total("pixels").astype(np.int64),
            area=total("area"),
            confidence=_mean(total("conf_sum"), total("conf_count")),
        )


def _mean(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def sieved_window(
    read_labels: Reader, shape: tuple[int, int], core: Window, min_pixels: int
) -> np.ndarray:
    """(h, w) labels of ``core`` after sieving regions under ``min_pixels`` (no sieving when
    it is 1 or less), judged on ``core`` plus a margin (see the module docstring)."""
    if min_pixels <= 1:
        return read_labels(core)
    halo = min(min_pixels, max(core.width, core.height) // 2)
    r0, c0 = max(0, core.row_off - halo), max(0, core.col_off - halo)
    r1 = min(shape[0], core.row_off + core.height + halo)
    c1 = min(shape[1], core.col_off + core.width + halo)
    labels = read_labels(Window(c0, r0, c1 - c0, r1 - r0))
    sieved = rasterio.features.sieve(labels, min_pixels, mask=labels > 0, connectivity=4)
    rows = slice(core.row_off - r0, core.row_off - r0 + core.height)
    cols = slice(core.col_off - c0, core.col_off - c0 + core.width)
    return sieved[rows, cols]


def _window_polygons(
    labels: np.ndarray,
    core: Window,
    shape: tuple[int, int],
    confidence: np.ndarray | None,
    row_areas: np.ndarray,
) -> dict[str, np.ndarray]:
    """Polygons (pixel coordinates) and per-region sums of one window's (h, w) labels;
    ``cut`` marks the polygons that touch an inner window edge."""
    regions = connected_regions(labels, background=0, connectivity=1).astype(np.int32)
    flat = regions.ravel()
    count = int(flat.max(initial=0)) + 1
    value = np.zeros(count, np.int64)
    value[flat] = labels.ravel()
    pixels = np.bincount(flat, minlength=count).astype(np.int64)
    rows = row_areas[core.row_off : core.row_off + core.height]
    if rows.min() == rows.max():  # a projected grid: every pixel has the same area
        area = pixels * rows[0]
    else:
        area = np.bincount(flat, weights=np.repeat(rows, labels.shape[1]), minlength=count)
    sums = {"pixels": pixels, "area": area}
    if confidence is None:
        sums["conf_sum"] = sums["conf_count"] = np.zeros(count)
    else:
        finite = np.isfinite(confidence).ravel()
        conf = np.where(finite, confidence.ravel(), 0.0)
        sums["conf_sum"] = np.bincount(flat, weights=conf, minlength=count)
        sums["conf_count"] = np.bincount(flat, weights=finite, minlength=count)
    offset = Affine.translation(core.col_off, core.row_off)
    found = rasterio.features.shapes(regions, mask=regions > 0, connectivity=4, transform=offset)
    ids, geometry = [], []
    for feature, region in found:
        ids.append(int(region))
        geometry.append(shapely.geometry.shape(feature))
    ids = np.array(ids, np.intp)
    batch = {name: array[ids] for name, array in sums.items()}
    batch.update(value=value[ids], geometry=np.array(geometry, dtype=object))
    batch["cut"] = np.isin(ids, _edge_regions(regions, core, shape))
    return batch


def _edge_regions(regions_at: np.ndarray, core: Window, shape: tuple[int, int]) -> np.ndarray:
    """Region ids of the (h, w) window ``regions_at`` found on its inner edges (the edges
    that are not the raster's)."""
    edges = []
    if core.row_off > 0:
        edges.append(regions_at[0])
    if core.row_off + core.height < shape[0]:
        edges.append(regions_at[-1])
    if core.col_off > 0:
        edges.append(regions_at[:, 0])
    if core.col_off + core.width < shape[1]:
        edges.append(regions_at[:, -1])
    return np.unique(np.concatenate(edges)) if edges else np.zeros(0, np.int32)


def polygonize(
    read_labels: Reader,
    shape: tuple[int, int],
    window: int = WINDOW,
    min_pixels: int = 0,
    read_confidence: Reader | None = None,
    row_areas: np.ndarray | None = None,
) -> Iterator[Polygons]:
    """Polygonise a class raster of ``shape`` (H, W), window by window.

    Parameters
    ----------
    read_labels : window -> (h, w) integer labels (uint8/uint16/int32; 0 = no class).
    shape : (H, W) of the raster.
    window : window side in pixels.
    min_pixels : regions under this many pixels are sieved away first (0: none).
    read_confidence : window -> (h, w) float confidence (NaN ignored), for the mean
        confidence of each polygon; None: none.
    row_areas : (H,) float64 area of one pixel of each row (e.g. m²; rows differ on a
        geographic grid); None: 1, areas in pixels.

    Yields
    ------
    Polygons batches in pixel coordinates: the polygons inside each window, then the
    polygons merged across window edges. Every region of the raster appears exactly once.
    """
    height, width = shape
    if row_areas is None:
        row_areas = np.ones(height)
    pieces = _Pieces([], [], [], [], [], [])
    for core in iter_windows(height, width, window):
        labels = sieved_window(read_labels, shape, core, min_pixels)
        confidence = None if read_confidence is None else read_confidence(core)
        batch = _window_polygons(labels, core, shape, confidence, row_areas)
        cut = batch["cut"]
        if cut.any():
            pieces.add(batch, cut)
        whole = ~cut
        if whole.any():
            yield Polygons(
                geometry=batch["geometry"][whole],
                value=batch["value"][whole],
                pixels=batch["pixels"][whole],
                area=batch["area"][whole],
                confidence=_mean(batch["conf_sum"][whole], batch["conf_count"][whole]),
            )
    if pieces.geometry:
        yield pieces.merged()


def to_map(geometry: np.ndarray, transform: Affine) -> np.ndarray:
    """(N,) shapely geometries from pixel coordinates onto the grid of ``transform``."""
    a, b, c, d, e, f = transform[:6]
    matrix = np.array([[a, d], [b, e]])
    return shapely.transform(geometry, lambda xy: xy @ matrix + [c, f])
