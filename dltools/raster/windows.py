"""The window maths of every step: grids of windows, halos, blend ramps and blended assembly.

Windows are :class:`rasterio.windows.Window` objects or ``(start, stop)`` spans along one axis.
The layouts that cover a raster:

- :func:`iter_windows`: fixed-size windows on a regular grid, clipped at the edges;
  :func:`strip_windows`: whole-width strips of a number of rows;
- :func:`window_origins` and :func:`block_windows`: only whole windows (tile libraries), found
  and read in blocks of about ``block`` pixels; :func:`tile_origins` adds the windows aligned
  with the far edges (:func:`edge_aligned_origins`), so that every pixel is in one;
- :func:`covering_windows` / :func:`spread_spans`: overlapping windows that cover every pixel,
  blended by :func:`blend_weights` / :func:`span_weights` so that no seam shows;
  :func:`blend_blocks` assembles predictions in bounded memory, whole or in independent
  :class:`BlendPart` units (:func:`blend_parts`);
- :func:`halo_windows`: core windows that tile the raster, each with a margin of context
  (:func:`with_halo`; :func:`core_slices` cuts a core out of its outer window).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

__all__ = [
    "BlendPart",
    "Window",
    "blend_blocks",
    "blend_parts",
    "blend_weights",
    "block_windows",
    "core_slices",
    "covering_windows",
    "edge_aligned_origins",
    "halo_windows",
    "iter_windows",
    "sample_windows",
    "span_weights",
    "spread_spans",
    "strip_windows",
    "tile_origins",
    "window_origins",
    "with_halo",
]


def iter_windows(height: int, width: int, size: int, overlap: int = 0) -> Iterator[Window]:
    """Windows of ``size`` x ``size`` pixels that cover a ``height`` x ``width`` raster.

    Neighbours share ``overlap`` rows/columns; windows on the last row/column are clipped at
    the raster's edge (so they may be smaller), and none lies wholly inside its neighbour.
    Row-major order.
    """
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"need size > 0 and 0 <= overlap < size, got {size=}, {overlap=}")
    step = size - overlap
    for row in range(0, max(height - overlap, 1), step):
        for col in range(0, max(width - overlap, 1), step):
            yield Window(col, row, min(size, width - col), min(size, height - row))


def strip_windows(height: int, width: int, rows: int) -> Iterator[Window]:
    """Whole-width strips of ``rows`` rows (the last one may be shorter) down a ``height`` x
    ``width`` raster."""
    if rows <= 0:
        raise ValueError(f"need rows > 0, got {rows=}")
    for row in range(0, height, rows):
        yield Window(0, row, width, min(rows, height - row))


def sample_windows(height: int, width: int, size: int = 256, n: int = 16) -> list[Window]:
    """At most ``n`` windows of ``size`` x ``size`` (clipped to the raster) spread evenly over
    a ``height`` x ``width`` raster: a sample of its pixels read in a few windows."""
    windows = list(iter_windows(height, width, size))
    if len(windows) <= n:
        return windows
    picks = np.linspace(0, len(windows) - 1, n).round().astype(int)
    return [windows[i] for i in picks]


def window_origins(length: int, size: int, stride: int) -> np.ndarray:
    """Offsets ``0, stride, 2*stride, ...`` of the whole windows along an axis of ``length``."""
    if size <= 0 or stride <= 0:
        raise ValueError(f"need size > 0 and stride > 0, got {size=}, {stride=}")
    return np.arange(0, max(length - size + 1, 0), stride)


def _per_block(size: int, stride: int, block: int) -> int:
    """Window origins per block side, so that a block spans about ``block`` pixels."""
    return max(1, (block - size) // stride + 1)


def block_of(i: int, j: int, height: int, width: int, size: int, stride: int, block: int) -> Window:
    """Block ``(i, j)`` of :func:`block_windows`: the pixels of the whole ``size`` windows
    (origins ``stride`` apart) whose origin indices fall in it."""
    per = _per_block(size, stride, block)
    r = window_origins(height, size, stride)[i * per : (i + 1) * per]
    c = window_origins(width, size, stride)[j * per : (j + 1) * per]
    return Window(int(c[0]), int(r[0]), int(c[-1] - c[0] + size), int(r[-1] - r[0] + size))


def block_index(row: int, col: int, size: int, stride: int, block: int) -> tuple[int, int]:
    """``(i, j)``: the block of :func:`block_windows` that holds the window at ``(row, col)``."""
    per = _per_block(size, stride, block)
    return row // stride // per, col // stride // per


def block_windows(height: int, width: int, size: int, stride: int, block: int) -> Iterator[Window]:
    """Blocks of about ``block`` pixels that together hold every whole window exactly once."""
    per = _per_block(size, stride, block)
    n_rows = len(window_origins(height, size, stride))
    n_cols = len(window_origins(width, size, stride))
    for i in range(-(-n_rows // per)):
        for j in range(-(-n_cols // per)):
            yield block_of(i, j, height, width, size, stride, block)


def edge_aligned_origins(length: int, size: int) -> np.ndarray:
    """(n,) intp offsets of ``size`` windows that cover ``0..length``: a regular grid plus,
    where ``length`` is not a multiple of ``size``, a last window aligned with the end (one
    window at 0 when ``length`` is smaller than ``size``)."""
    starts = list(range(0, length - size + 1, size)) or [0]
    if length > size and length % size:
        starts.append(length - size)
    return np.array(starts, np.intp)


def tile_origins(length: int, size: int, stride: int) -> np.ndarray:
    """(n,) intp offsets of ``size`` windows that cover ``0..length`` with a step of
    ``stride``: :func:`window_origins` plus those of :func:`edge_aligned_origins`, sorted."""
    starts = np.union1d(window_origins(length, size, stride), edge_aligned_origins(length, size))
    return starts.astype(np.intp)


def covering_windows(length: int, size: int, step: int) -> np.ndarray:
    """Offsets ``0, step, 2 * step, ...`` of the windows of ``size`` that cover ``0..length``;
    the last one may run past the end."""
    if not 0 < step <= size:
        raise ValueError(f"need 0 < step <= size, got {step=}, {size=}")
    count = 1 if length <= size else -(-(length - size) // step) + 1
    return np.arange(count) * step


def spread_spans(n: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Start/stop of evenly spread windows of at most ``window`` covering 0..n with ``overlap``."""
    if n <= window:
        return [(0, n)]
    count = int(np.ceil((n - overlap) / (window - overlap)))
    step = (n - overlap) / count
    return [(round(i * step), min(n, round((i + 1) * step + overlap))) for i in range(count)]


def span_weights(spans: list[tuple[int, int]], n: int) -> list[np.ndarray]:
    """1-D float32 weights of ``spans`` ((start, stop) pairs in order) along an axis of ``n``.

    Inside each overlap a span's weight is 0 over the quarter nearest its edge and rises
    linearly across the middle half; it is 1 elsewhere. The weights sum to 1 at every position
    that a span covers. Returns one (stop - start,) array per span.
    """
    weights = []
    for i, (start, stop) in enumerate(spans):
        pos = np.arange(start, stop, dtype=np.float64) + 0.5
        wgt = np.ones(stop - start)
        zone = spans[i - 1][1] - start if i > 0 else 0
        if zone > 0:
            wgt = np.minimum(wgt, np.clip((pos - start - zone / 4) / (zone / 2), 0, 1))
        zone = stop - spans[i + 1][0] if i < len(spans) - 1 else 0
        if zone > 0:
            wgt = np.minimum(wgt, np.clip((stop - pos - zone / 4) / (zone / 2), 0, 1))
        weights.append(wgt)
    total = np.zeros(n)
    for (start, stop), wgt in zip(spans, weights, strict=True):
        total[start:stop] += wgt
    return [
        (wgt / total[a:b]).astype(np.float32) for (a, b), wgt in zip(spans, weights, strict=True)
    ]


def blend_weights(length: int, size: int, step: int) -> np.ndarray:
    """(n, size) float32 weights of the windows of :func:`covering_windows` along one axis.

    The ramps of :func:`span_weights`; the weights sum to 1 at every position of
    ``0..length`` and are 0 past its end.
    """
    starts = covering_windows(length, size, step)
    spans = [(int(s), min(int(s) + size, length)) for s in starts]
    weights = np.zeros((len(starts), size), np.float32)
    for row, (start, stop), weight in zip(weights, spans, span_weights(spans, length), strict=True):
        row[: stop - start] = weight
    return weights


@dataclass(frozen=True)
class BlendPart:
    """One unit of :func:`blend_blocks`: the window rows ``first_row`` to ``end_row`` (end
    excluded) of column chunk ``chunk``."""

    chunk: int
    first_row: int
    end_row: int


def blend_parts(
    shape: tuple[int, int], size: tuple[int, int], step: tuple[int, int], max_width: int | None
) -> list[BlendPart]:
    """Parts of about ``max_width`` x ``max_width`` pixels (the column chunks of
    :func:`blend_blocks`, cut across into groups of window rows) that together make its
    blocks: each can be made on its own, in any order (default ``max_width``: one part)."""
    rows = len(covering_windows(shape[0], size[0], step[0]))
    cols = len(covering_windows(shape[1], size[1], step[1]))
    if max_width is None:
        return [BlendPart(0, 0, rows)]
    per_chunk = max(1, max_width // step[1])
    per_part = max(1, max_width // step[0])
    return [
        BlendPart(chunk, first, min(first + per_part, rows))
        for chunk in range(-(-cols // per_chunk))
        for first in range(0, rows, per_part)
    ]


def blend_blocks(
    shape: tuple[int, int],
    size: tuple[int, int],
    step: tuple[int, int],
    predict_row: Callable[[int, np.ndarray], Iterable[np.ndarray]],
    max_width: int | None = None,
    part: BlendPart | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Blend overlapping window predictions into a map of ``shape`` (H, W), block by block.

    Windows of ``size`` (rows, cols) lie ``step`` (rows, cols) apart (see
    :func:`covering_windows`) and are weighted by :func:`blend_weights` along both axes.
    ``predict_row(row, cols)`` yields the (size_r, size_c, K) predictions of the windows whose
    top-left corners are ``(row, col)`` for each col of ``cols``, in order.

    The map is made in column chunks of at most ``max_width`` columns (default: the whole
    width), each from top to bottom; yields final ``(row, col, (rows, cols, K) float32)``
    blocks. Each block is a view that is overwritten once the next one is requested: use (or
    copy) it first. Memory is one window row of one chunk, whatever the size of the map; the
    window straddling two chunks is predicted for both. With ``part`` (one of
    :func:`blend_parts`), only that part's blocks: the window rows before it that overlap
    them are predicted again, so the blocks are those of the whole run, value for value.
    """
    height, width = shape
    rows = covering_windows(height, size[0], step[0])
    cols = covering_windows(width, size[1], step[1])
    weight_r = blend_weights(height, size[0], step[0])
    weight_c = blend_weights(width, size[1], step[1])
    per_chunk = len(cols) if max_width is None else max(1, max_width // step[1])
    chunks = range(0, len(cols), per_chunk)
    first_row, end_row = (0, len(rows)) if part is None else (part.first_row, part.end_row)
    start = first_row
    while start > 0 and rows[start - 1] + size[0] > rows[first_row]:
        start -= 1  # rows whose windows reach into the part
    for first in chunks if part is None else [chunks[part.chunk]]:
        lo = int(cols[first])
        hi = int(cols[first + per_chunk]) if first + per_chunk < len(cols) else width
        used = np.flatnonzero((cols < hi) & (cols + size[1] > lo))
        band = None
        for i in range(start, end_row):
            row = rows[i]
            for j, pred in zip(used, predict_row(int(row), cols[used]), strict=True):
                if band is None:
                    band = np.zeros((size[0], hi - lo, pred.shape[2]), np.float32)
                c0, c1 = max(int(cols[j]), lo), min(int(cols[j]) + size[1], hi)
                part_pred = pred[:, c0 - cols[j] : c1 - cols[j]]
                weight = (
                    weight_r[i][:, None, None]
                    * weight_c[j][None, c0 - cols[j] : c1 - cols[j], None]
                )
                band[:, c0 - lo : c1 - lo] += part_pred * weight
            done = min(step[0] if i < len(rows) - 1 else size[0], height - row)
            if i >= first_row:
                yield int(row), lo, band[:done]
            band[: size[0] - step[0]] = band[step[0] :]
            band[size[0] - step[0] :] = 0


def halo_windows(height: int, width: int, core: int, halo: int) -> list[tuple[Window, Window]]:
    """``(core, outer)`` windows: cores of ``core`` px tile a ``height`` x ``width`` raster in
    row-major order; each outer window adds ``halo`` px of context, clipped at the edges."""
    cores = iter_windows(height, width, core)
    return [(window, with_halo(window, halo, height, width)) for window in cores]


def with_halo(core: Window, halo: int, height: int, width: int) -> Window:
    """``core`` grown by ``halo`` px on every side, clipped to a ``height`` x ``width``
    raster."""
    r0, c0 = max(0, core.row_off - halo), max(0, core.col_off - halo)
    r1 = min(height, core.row_off + core.height + halo)
    c1 = min(width, core.col_off + core.width + halo)
    return Window(c0, r0, c1 - c0, r1 - r0)


def core_slices(core: Window, outer: Window) -> tuple[slice, slice]:
    """``(rows, cols)`` slices of ``core`` in an array read from ``outer`` (a window of
    :func:`halo_windows`)."""
    top, left = core.row_off - outer.row_off, core.col_off - outer.col_off
    return slice(top, top + core.height), slice(left, left + core.width)
