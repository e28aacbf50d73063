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
   Those that do are pieces: at the end the pieces of each value are stitched
   (:func:`stitch`): the window-edge segments that two pieces share are dropped and what is
   left of their shells is traced into rings, so a region cut by window edges comes out as
   the one polygon a whole-raster run gives (pieces that meet only at a corner stay apart,
   as 4-connectivity wants). Only pieces are held in memory.

Pixel counts, areas and confidence sums are accumulated per region from the pixels (exact
whatever the window size); :func:`to_map` moves pixel coordinates onto a raster's grid.

Memory: one window's arrays (about 20 bytes per pixel) plus the pieces; stitching needs a
few integer arrays of the pieces' shell vertices (no GEOS overlay), one value at a time, so
even a single region spanning a huge raster with millions of vertices costs less than a
window (``bench/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
from rasterio.transform import Affine
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.measure import label as connected_regions

from dltools.raster.windows import Window, core_slices, iter_windows, with_halo

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


def _polygons(geometry: np.ndarray, value: np.ndarray, sums: dict[str, np.ndarray]) -> Polygons:
    """:class:`Polygons` of regions with their per-region ``sums`` (pixels, area, conf_sum,
    conf_count)."""
    return Polygons(
        geometry=geometry,
        value=value,
        pixels=sums["pixels"].astype(np.int64),
        area=sums["area"],
        confidence=_mean(sums["conf_sum"], sums["conf_count"]),
    )


def _merged(
    pieces: list[dict[str, np.ndarray]], shape: tuple[int, int], window: int
) -> Iterator[Polygons]:
    """Stitch the ``pieces`` (batches of polygons cut by inner window edges, with their sums;
    the list is emptied) with :func:`stitch` one value at a time, letting each value's pieces
    go as they are stitched, and yield its merged polygons with their summed statistics."""
    cat = {name: np.concatenate([batch[name] for batch in pieces]) for name in pieces[0]}
    pieces.clear()
    cols = np.arange(window, shape[1], window)
    rows = np.arange(window, shape[0], window)
    for value in np.unique(cat["value"]):
        chosen = np.flatnonzero(cat["value"] == value)
        rings, piece = shapely.get_rings(cat["geometry"][chosen], return_index=True)
        cat["geometry"][chosen] = None
        geometry, owner = stitch(rings, piece, shape, cols, rows)
        del rings
        total = {
            name: np.bincount(owner, weights=cat[name][chosen], minlength=len(geometry))
            for name in ("pixels", "area", "conf_sum", "conf_count")
        }
        yield _polygons(geometry, np.full(len(geometry), value, np.int64), total)


def stitch(
    rings: np.ndarray,
    piece: np.ndarray,
    shape: tuple[int, int],
    cols: np.ndarray,
    rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Join the pieces of regions cut by window edges into the regions' polygons.

    Only the pieces' shells meet window edges (a hole inside a window never reaches its
    edge), so the holes are kept as they are and the shells are taken apart into directed
    segments (clockwise: region on the right). Where two pieces lie on either side of a
    window edge, the unit segments of the edge that they share are inside one region: they
    are dropped and the pieces belong to one region. What is left of each region's shells is
    traced back into rings: the one clockwise ring is the region's shell, and the
    counter-clockwise ones are holes that close across window edges. Where a region touches
    itself at a corner (diagonal pixels) the trace goes round the corner of a pixel outside
    the region, so that every ring is simple and rings touch only at such corners, as a
    valid polygon wants.
    Memory: a few arrays of the shells' vertices, whatever the regions' shapes.

    Parameters
    ----------
    rings : (N,) shapely LinearRings in pixel coordinates (whole numbers), the rings of M
        pieces of one label value (each the polygon of a 4-connected region of one window),
        each piece's shell then its holes, as :func:`shapely.get_rings` gives them.
    piece : (N,) int piece of each ring, 0 .. M - 1 in increasing order.
    shape : (H, W) of the raster.
    cols, rows : (C,) and (R,) int x of the inner vertical window edges and y of the inner
        horizontal ones.

    Returns
    -------
    polygons : (K,) object shapely Polygons, one per region, in pixel coordinates.
    owner : (M,) intp index in ``polygons`` of each piece's region.
    """
    shell = np.r_[True, piece[1:] != piece[:-1]]
    start, end, shell_piece = _directed_segments(rings[shell])
    start, end, shell_piece, on_edge = _split_along(start, end, shell_piece, cols, rows)
    first, second = _shared_segments(start, end, on_edge, shape)
    links = (np.ones(len(first), np.int32), (shell_piece[first], shell_piece[second]))
    count, owner = connected_components(coo_matrix(links, shape=(shell.sum(),) * 2), False)
    owner = owner.astype(np.intp)
    keep = np.ones(len(start), bool)
    keep[first] = keep[second] = False
    start, end, region = start[keep], end[keep], owner[shell_piece[keep]]
    del shell_piece, on_edge, keep, first, second
    traced, traced_region, traced_shell = _traced_rings(start, end, region, shape)
    if not np.array_equal(np.bincount(traced_region[traced_shell], minlength=count), [1] * count):
        raise AssertionError("stitching found a region without exactly one shell")
    every = np.concatenate([traced, rings[~shell]])
    region = np.concatenate([traced_region, owner[piece[~shell]]])
    arrange = np.lexsort((~np.r_[traced_shell, np.zeros(len(every) - len(traced), bool)], region))
    return shapely.polygons(every[arrange], indices=region[arrange]), owner


def _directed_segments(shells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 2) int32 starts and ends of the segments of (M,) LinearRings, each ring's in its
    order and turned clockwise where it is not, and (n,) int64 the ring of each."""
    xy, ring = shapely.get_coordinates(shells, return_index=True)
    xy = xy.astype(np.int32)
    begins = np.flatnonzero(np.r_[True, ring[1:] != ring[:-1]])
    lengths = np.diff(np.r_[begins, len(ring)])
    cross = _cross(xy[:-1], xy[1:])
    cross[begins[1:] - 1] = 0  # no segment from one ring's end to the next ring's start
    counter = np.repeat(np.add.reduceat(cross, begins) > 0, lengths)
    del cross
    index = np.arange(len(xy))
    index[counter] = np.repeat(2 * begins + lengths - 1, lengths)[counter] - index[counter]
    xy = xy[index]
    follows = ring[1:] == ring[:-1]
    return xy[:-1][follows], xy[1:][follows], ring[:-1][follows]


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) int64 cross products of (n, 2) points ``a`` and ``b`` (twice the signed area of
    the triangle they make with the origin)."""
    return a[:, 0].astype(np.int64) * b[:, 1] - b[:, 0].astype(np.int64) * a[:, 1]


def _split_along(
    start: np.ndarray, end: np.ndarray, piece: np.ndarray, cols: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (n, 2) segments with those along inner window edges cut into unit segments, in
    the same order; returns starts, ends, pieces and (n',) bool along a window edge."""
    step = np.sign(end - start)
    on_edge = (step[:, 0] == 0) & np.isin(start[:, 0], cols)
    on_edge |= (step[:, 1] == 0) & np.isin(start[:, 1], rows)
    count = np.where(on_edge, np.abs(end - start).sum(1), 1)
    source = np.repeat(np.arange(len(start)), count)
    offset = np.arange(len(source)) - np.repeat(np.cumsum(count) - count, count)
    step, on_edge = step[source], on_edge[source]
    cut_start = start[source]
    cut_start += (offset[:, None] * step).astype(cut_start.dtype)
    cut_end = np.where(on_edge[:, None], cut_start + step, end[source])
    return cut_start, cut_end, piece[source], on_edge


def _shared_segments(
    start: np.ndarray, end: np.ndarray, on_edge: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(P,) and (P,) indices of the pairs of window-edge unit segments that lie on each
    other (the two sides of a window edge inside one region)."""
    along = np.flatnonzero(on_edge)
    low = np.minimum(start[along], end[along]).astype(np.int64)
    vertical = start[along, 0] == end[along, 0]
    key = (low[:, 0] * (shape[0] + 1) + low[:, 1]) * 2 + vertical
    order = np.argsort(key, kind="stable")
    twin = key[order[1:]] == key[order[:-1]]
    return along[order[:-1][twin]], along[order[1:][twin]]


def _traced_rings(
    start: np.ndarray, end: np.ndarray, region: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Link the (n, 2) directed segments of each region into closed rings.

    Returns the (T,) LinearRings (vertices where a ring goes straight on dropped), the
    (T,) region of each and (T,) bool, True for clockwise rings (shells).
    """
    n = len(start)
    side = (shape[1] + 1) * (shape[0] + 1)
    if n and int(region.max()) + 1 > np.iinfo(np.int64).max // side:
        raise ValueError("too many regions to key their vertices in 64 bits")

    def vertex(xy: np.ndarray) -> np.ndarray:
        return (region * side + xy[:, 0].astype(np.int64) * (shape[0] + 1)) + xy[:, 1]

    keys = vertex(start)
    leaving = np.argsort(keys)
    keys = keys[leaving]
    arriving = vertex(end)
    at = np.searchsorted(keys, arriving)
    following = leaving[at]
    # a corner where the region touches itself diagonally: two ways on; the left turn goes
    # round the corner of a pixel outside the region and keeps the rings apart (the right
    # turn would make one ring that touches itself, which a valid polygon may not have)
    pinch = np.flatnonzero(keys[np.minimum(at + 1, n - 1)] == arriving)
    pinch = pinch[at[pinch] + 1 < n]
    step = np.sign(end - start)
    left = np.stack([-step[pinch, 1], step[pinch, 0]], axis=1)
    wrong = pinch[(step[following[pinch]] != left).any(axis=1)]
    following[wrong] = leaving[at[wrong] + 1]
    del keys, leaving, arriving, at
    order, ring = _cycles(following)
    step = step[order]
    begins = np.flatnonzero(np.r_[True, ring[1:] != ring[:-1]])
    previous = np.arange(-1, n - 1)
    previous[begins] = np.r_[begins[1:], n] - 1
    corner = (step != step[previous]).any(axis=1)
    del step, previous
    area = np.bincount(ring, weights=_cross(start[order], end[order]))
    rings = shapely.linearrings(start[order[corner]].astype(np.float64), indices=ring[corner])
    return rings, region[order[begins]], area < 0


def _cycles(following: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cycles of the permutation ``following`` (n,) (segment i is followed by segment
    ``following[i]``): (n,) the segments cycle by cycle, each cycle's in its order, and (n,)
    the cycle of each of them (0, 1, ... in that order)."""
    n = len(following)
    # runs of segments that follow on from the one before, linked into cycles in Python
    last = np.flatnonzero(following != np.arange(1, n + 1))
    first = np.r_[0, last[:-1] + 1]
    successor = np.searchsorted(first, following[last]).tolist()
    runs, cycle_of_run, seen, cycles = [], [], bytearray(len(first)), 0
    for begin in range(len(first)):
        if seen[begin]:
            continue
        run = begin
        while not seen[run]:
            seen[run] = 1
            runs.append(run)
            cycle_of_run.append(cycles)
            run = successor[run]
        cycles += 1
    runs = np.array(runs, np.intp)
    lengths = last[runs] - first[runs] + 1
    order = np.arange(n) + np.repeat(first[runs] - (np.cumsum(lengths) - lengths), lengths)
    return order, np.repeat(cycle_of_run, lengths)


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
    outer = with_halo(core, halo, *shape)
    labels = read_labels(outer)
    sieved = rasterio.features.sieve(labels, min_pixels, mask=labels > 0, connectivity=4)
    return sieved[core_slices(core, outer)]


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
    polygons merged across window edges, one batch per label value. Every region of the
    raster appears exactly once.
    """
    height, width = shape
    if row_areas is None:
        row_areas = np.ones(height)
    pieces: list[dict[str, np.ndarray]] = []
    for core in iter_windows(height, width, window):
        labels = sieved_window(read_labels, shape, core, min_pixels)
        confidence = None if read_confidence is None else read_confidence(core)
        batch = _window_polygons(labels, core, shape, confidence, row_areas)
        cut = batch.pop("cut")
        if cut.any():
            pieces.append({name: array[cut] for name, array in batch.items()})
        if not cut.all():
            whole = {name: array[~cut] for name, array in batch.items()}
            yield _polygons(whole["geometry"], whole["value"], whole)
    if pieces:
        yield from _merged(pieces, shape, window)


def to_map(geometry: np.ndarray, transform: Affine) -> np.ndarray:
    """(N,) shapely geometries from pixel coordinates onto the grid of ``transform``."""
    a, b, c, d, e, f = transform[:6]

    def move(xy: np.ndarray) -> np.ndarray:  # in place: one polygon may have millions of vertices
        x = xy[:, 0].copy()
        xy[:, 0] *= a
        xy[:, 0] += b * xy[:, 1]
        xy[:, 0] += c
        xy[:, 1] *= e
        xy[:, 1] += d * x
        xy[:, 1] += f
        return xy

    return shapely.transform(geometry, move)
