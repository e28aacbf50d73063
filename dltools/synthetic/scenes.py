"""Realistic synthetic data: hand-like label strokes and coastal drone scenes.

Used by the tests, the benchmarks and ``demo_data/generate.py``. Everything is vectorised
numpy/OpenCV and deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.signal import lfilter

_STEP = 2.0  # px between successive points of a stroke's centre line
_CANDIDATES = 12  # evenly spread headings tried per start point; the longest walk is drawn
_MAX_GRID = 1_000_000  # start points are sampled on a grid of at most this many pixels


def simulate_strokes(
    labels: np.ndarray,
    fraction: float = 0.02,
    width: int = 3,
    margin: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """Thin hand-like strokes inside each class region, as a labeller would draw.

    ``labels``: (H, W) int, 0 = unlabelled, k = class k (1-based, at most 255).
    Returns sparse (H, W) uint8: 0 = no stroke, k = a stroke of class k.

    Strokes are smooth random polylines (random walks with momentum) ``width`` px wide whose
    pixels all lie at least ``margin`` px inside their class (and inside the frame). They are
    drawn until about ``fraction`` of the labelled pixels are covered, shared between the
    classes in proportion to the square root of their areas, so every class gets strokes,
    rare ones included. A class too small to hold a stroke that far inside gets none.
    """
    return _strokes(labels, fraction, width, margin, seed)[0]


def stroke_paths(
    labels: np.ndarray,
    fraction: float = 0.02,
    width: int = 3,
    margin: int = 10,
    seed: int = 0,
) -> list[tuple[int, np.ndarray]]:
    """The centre lines of the strokes :func:`simulate_strokes` draws with the same arguments.

    Returns [(class k, (N, 2) int32 pixel (x, y) vertices), ...] in drawing order, e.g. to
    write strokes as vector lines (GeoJSON) instead of a raster.
    """
    return _strokes(labels, fraction, width, margin, seed)[1]


def _strokes(labels, fraction, width, margin, seed) -> tuple[np.ndarray, list]:
    """simulate_strokes' raster and the polylines it was drawn from."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D (H, W), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError("label values must lie in 0..255")
    rng = np.random.default_rng(seed)
    out = np.zeros(labels.shape, np.uint8)
    counts = np.bincount(labels.ravel().astype(np.intp), minlength=256)
    classes = [k for k in range(1, 256) if counts[k]]
    clearance = margin + width / 2 + 2.0  # centre line to class edge; covers rounding and steps
    allowed = {}
    for k in classes:
        mask = (labels == k).view(np.uint8)
        mask[[0, -1], :] = 0  # keep strokes inside the frame too
        mask[:, [0, -1]] = 0
        inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5) >= clearance
        area = int(np.count_nonzero(inside))
        if area:
            allowed[k] = (inside, area)
    paths: list[tuple[int, np.ndarray]] = []
    if not allowed:
        return out, paths
    quotas = _share(
        fraction * counts[1:].sum(),
        {k: counts[k] for k in allowed},
        {k: 0.3 * area for k, (_, area) in allowed.items()},
    )
    length = float(np.clip(0.25 * min(labels.shape), 20, 2000))
    for k, (inside, _) in allowed.items():
        paths += _stroke_class(out, inside, k, quotas[k], length, width, rng)
    return out, paths


def _share(total: float, sizes: dict[int, int], caps: dict[int, float]) -> dict[int, float]:
    """Split ``total`` in proportion to sqrt(size), no key above its cap (water-filling)."""
    quotas = dict.fromkeys(sizes, 0.0)
    open_keys = set(sizes)
    left = total
    while open_keys and left > 1e-9:
        weights = {k: np.sqrt(sizes[k]) for k in open_keys}
        norm = sum(weights.values())
        capped = set()
        for k in open_keys:
            quotas[k] += left * weights[k] / norm
            if quotas[k] >= caps[k]:
                quotas[k] = caps[k]
                capped.add(k)
        left = total - sum(quotas.values())
        if not capped:
            break
        open_keys -= capped
    return quotas


def _stroke_class(
    out: np.ndarray,
    inside: np.ndarray,
    k: int,
    quota: float,
    length: float,
    width: int,
    rng: np.random.Generator,
) -> list[tuple[int, np.ndarray]]:
    """Draw strokes of class ``k`` whose centre lines stay in ``inside`` until ``quota`` px.

    Returns the strokes drawn as (k, (N, 2) int32 x, y).
    """
    h, w = inside.shape
    stride = max(1, int(np.sqrt(inside.size / _MAX_GRID)))
    starts = np.flatnonzero(inside[::stride, ::stride])
    if not starts.size:
        starts = np.flatnonzero(inside)
        stride = 1
    grid_w = -(-w // stride)
    covered = 0
    attempts = 0
    paths = []
    max_attempts = 20 + 5 * quota / (length * width)
    while covered < quota and attempts < max_attempts:
        attempts += 1
        start = starts[rng.integers(starts.size)]
        y0, x0 = divmod(int(start), grid_w)
        pts = _walk(inside, y0 * stride, x0 * stride, length * rng.uniform(0.4, 1.2), rng)
        if len(pts) < 2:
            continue
        x_lo, y_lo = np.maximum(pts.min(axis=0) - width, 0)
        x_hi, y_hi = pts.max(axis=0) + width + 1
        box = out[y_lo : min(y_hi, h), x_lo : min(x_hi, w)]
        before = np.count_nonzero(box == k)
        cv2.polylines(out, [pts.reshape(-1, 1, 2)], False, int(k), thickness=width)
        covered += np.count_nonzero(box == k) - before
        paths.append((k, pts))
    return paths


def _walk(inside: np.ndarray, y0: int, x0: int, length: float, rng: np.random.Generator):
    """The longest of a few momentum random walks from (y0, x0) staying in ``inside``.

    Returns (N, 2) int32 points (x, y). The angular velocity is an AR(1) process scaled so that
    the heading wanders about one radian over the whole stroke, whatever its length.
    """
    n = max(2, int(length / _STEP))
    rho = 0.9
    omega = lfilter([(1 - rho) / np.sqrt(n)], [1, -rho], rng.standard_normal((_CANDIDATES, n)))
    start = rng.uniform(0, 2 * np.pi) + np.linspace(0, 2 * np.pi, _CANDIDATES, endpoint=False)
    heading = start[:, None] + np.cumsum(omega, axis=1)
    heading[:, 0] = heading[:, 1]
    xs = x0 + np.cumsum(_STEP * np.cos(heading), axis=1) - _STEP * np.cos(heading[:, :1])
    ys = y0 + np.cumsum(_STEP * np.sin(heading), axis=1) - _STEP * np.sin(heading[:, :1])
    cols = np.rint(xs).astype(np.int64)
    rows = np.rint(ys).astype(np.int64)
    h, w = inside.shape
    ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    ok[ok] = inside[rows[ok], cols[ok]]
    runs = np.where(ok.all(axis=1), n, np.argmin(ok, axis=1))
    best = int(np.argmax(runs))
    return np.stack([cols[best, : runs[best]], rows[best, : runs[best]]], axis=1).astype(np.int32)


CLASS_NAMES: tuple[str, ...] = ("water", "foam", "wetsand", "drysand", "veg", "road")
CLASS_COLORS: np.ndarray = np.array(
    [
        [31, 97, 171],
        [245, 245, 240],
        [166, 124, 62],
        [238, 221, 160],
        [46, 139, 60],
        [128, 128, 128],
    ],
    np.uint8,
)
WATER, FOAM, WETSAND, DRYSAND, VEG, ROAD = range(1, 7)

_WORK_SIZE = 1600  # smooth fields live on a grid of about this many px on a side (sqrt(H * W))
_FOAM_RGB = (0.88, 0.9, 0.9)
_LINE_RGB = {1: (0.86, 0.86, 0.84), 2: (0.86, 0.72, 0.25)}  # white edge line, yellow dash


def coastal_scene(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A drone photograph of a beach and its true labels.

    Returns (rgb (H, W, 3) uint8, labels (H, W) uint8 with values 1..6 = index in
    :data:`CLASS_NAMES` + 1). Ocean with swell, glints and foam lines, wet and dry sand, patchy
    dune vegetation and (usually) a road or sand track, with ragged fractal boundaries, uneven
    light, vignetting, blur and sensor noise. The layout (shoreline angle, zone widths, road)
    varies with ``seed``; most scenes hold all six classes. Smooth fields are computed on a
    coarser grid, so a 36 MP scene takes seconds and about 1.5 GB.
    """
    # layout choices and textures come from separate streams, so a scene keeps its layout
    # (shoreline, zone widths, road) at any size
    rng, texture_rng = np.random.default_rng(seed).spawn(2)
    step = max(1, round(np.sqrt(height * width) / _WORK_SIZE))
    grid = _Grid((height, width), step, texture_rng)
    labels, fields = _layout(grid, rng)
    look = _surface(labels, fields, grid, rng)
    del fields
    return _photograph(labels, look, grid, rng), labels


@dataclass(frozen=True)
class _Grid:
    """The (H, W) pixel grid, a coarse one sampling every ``step`` px for smooth fields, and
    the random stream of every texture drawn on them."""

    shape: tuple[int, int]
    step: int
    rng: np.random.Generator

    @property
    def size(self) -> float:
        """sqrt(H * W): the length unit of every layout distance."""
        return float(np.sqrt(self.shape[0] * self.shape[1]))

    @property
    def coarse(self) -> tuple[int, int]:
        return (-(-self.shape[0] // self.step), -(-self.shape[1] // self.step))

    def up(self, field: np.ndarray) -> np.ndarray:
        """A coarse field resampled onto the full grid (a new (H, W) float32 array)."""
        if self.step == 1:
            return field.copy()
        return cv2.resize(field, self.shape[::-1], interpolation=cv2.INTER_LINEAR)

    def down(self, field: np.ndarray) -> np.ndarray:
        """A full-grid field averaged onto the coarse grid."""
        if self.step == 1:
            return field.copy()
        return cv2.resize(field, self.coarse[::-1], interpolation=cv2.INTER_AREA)

    def noise(self, largest: float, smallest: float, roughness: float = 0.5) -> np.ndarray:
        """Coarse fractal noise with cells from ``largest`` to ``smallest`` (fractions of size)."""
        cells = self.size / self.step
        return _fractal(self.coarse, self.rng, largest * cells, max(smallest * cells, 1), roughness)

    def detail(self, largest: float, smallest: float, roughness: float) -> np.ndarray:
        """Full-grid fractal noise with cells from ``largest`` to ``smallest`` px."""
        return _fractal(self.shape, self.rng, largest, smallest, roughness)

    def axes(self, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """Coarse rotated coordinates (across, along) in units of size, origin at the centre.

        ``across`` grows in direction ``angle`` (radians from +x, y pointing down).
        """
        (h, w), (hc, wc), s = self.shape, self.coarse, self.step
        xs = (np.arange(wc, dtype=np.float32) * s + (s - 1) / 2 - w / 2) / np.float32(self.size)
        ys = (np.arange(hc, dtype=np.float32) * s + (s - 1) / 2 - h / 2) / np.float32(self.size)
        c, si = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        return (xs * c)[None, :] + (ys * si)[:, None], (ys * c)[:, None] - (xs * si)[None, :]


def _fractal(
    shape: tuple[int, int],
    rng: np.random.Generator,
    largest: float,
    smallest: float = 1.5,
    roughness: float = 0.5,
) -> np.ndarray:
    """Zero-mean, unit-variance fractal noise, (H, W) float32.

    Random grids with cells from ``largest`` down to ``smallest`` px, each octave ``roughness``
    times the amplitude of the coarser one, summed by repeated 2x upsampling (cv2.resize).
    """
    h, w = shape
    largest = max(largest, smallest)
    gh, gw = int(h / largest) + 2, int(w / largest) + 2
    grid = _white(rng, (gh, gw))
    cell, amp = largest, 1.0
    while cell / 2 >= smallest:
        cell, amp, gh, gw = cell / 2, amp * roughness, 2 * gh, 2 * gw
        grid = cv2.resize(grid, (gw, gh), interpolation=cv2.INTER_LINEAR)
        grid += amp * _white(rng, (gh, gw))
    if gh >= h and gw >= w:  # already at pixel scale
        out = grid[:h, :w]
    else:
        smooth = cv2.INTER_CUBIC if cell > 3 else cv2.INTER_LINEAR
        out = cv2.resize(grid, (w, h), interpolation=smooth)
    sample = out[::7, ::7]
    out -= sample.mean()
    out /= sample.std() + 1e-6
    return out


def _white(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Zero-mean, unit-variance white noise, float32 (uniform bytes: far cheaper than normals)."""
    out = rng.integers(0, 256, shape, dtype=np.uint8).astype(np.float32)
    out -= 127.5
    out *= np.float32(1 / 73.9)
    return out


def _layout(grid: _Grid, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Class map (H, W) uint8 and the fields that the painter needs.

    Zones follow the landward axis: sea, surf with foam, swash, wet sand, dry sand, dunes with
    clumps of plants, road. Each boundary has its own large-scale meander (coarse grid) and a
    shared fine raggedness (full grid). Fields: ``sea`` and ``damp`` (coarse distances seaward
    of the waterline and landward of the wet-sand line), ``foam`` (H, W) cover in [0, 1],
    ``marks`` (H, W) uint8 road paint (1 white, 2 yellow) or wheel ruts (3).
    """
    angle = rng.uniform(0, 2 * np.pi)
    land, along = grid.axes(angle)
    h, w = grid.shape
    half = (abs(np.cos(angle)) * w + abs(np.sin(angle)) * h) / (2 * grid.size)
    span = 2 * half

    def at(fraction: float) -> float:
        return -half + fraction * span

    shore = rng.uniform(0.28, 0.42)
    dry = shore + rng.uniform(0.07, 0.13)
    dune = dry + rng.uniform(0.10, 0.20) if rng.random() < 0.9 else 2.0
    back = min(dune, dry + 0.12)  # the road lies behind this

    sea = at(shore) - land - 0.03 * span * grid.noise(1 / 1.5, 1 / 50)
    sea -= (
        rng.uniform(0, 0.012)
        * span
        * np.sin(along * np.float32(2 * np.pi / rng.uniform(0.06, 0.14)))
    )
    damp = land - at(dry) + 0.025 * span * grid.noise(1 / 1.5, 1 / 50)
    # dune plants grow in clumps, sparse at the vegetation line and denser behind it
    bush = land - at(dune) + 0.04 * span * grid.noise(1 / 1.5, 1 / 30)
    bush /= np.float32(0.03 * span)
    np.clip(bush, -1.5, 1, out=bush)
    bush += 0.7 * grid.noise(1 / 25, 2 / grid.size)
    road = None
    if rng.random() < 0.85:
        centre = at(rng.uniform(back + 0.05, max(back + 0.06, 0.9)))
        tilt = rng.uniform(-0.25, 0.25)
        c, s = np.float32(np.cos(tilt)), np.float32(np.sin(tilt))
        ahead = along * c - land * s
        across = land * c + along * s - centre
        across += np.float32(rng.uniform(-0.15, 0.15)) * ahead * ahead
        across /= np.float32(rng.uniform(0.018, 0.032) * span)
        road = (across, ahead, rng.random() < 0.7)
    del land, along

    fine = grid.detail(grid.size / 15, 1.5, 0.6)
    labels = np.full(grid.shape, DRYSAND, np.uint8)
    labels[grid.up(damp) + 0.006 * span * fine < 0] = WETSAND
    labels[grid.up(sea) - 0.004 * span * fine > 0] = WATER
    labels[(grid.up(bush) + 0.3 * fine > 0.3) & (labels == DRYSAND)] = VEG
    del bush
    marks = np.zeros(grid.shape, np.uint8)
    if road is not None:
        across, ahead, paved = road
        across = grid.up(across)
        np.abs(across, out=across)
        inside = across + 0.05 * fine < 1  # sand drifts over the edges
        labels[inside] = ROAD
        if paved:
            period = np.float32(max(16.0, 0.04 * grid.size) / grid.size)
            dash = np.mod(grid.up(ahead), period) < period / 2
            marks[inside & (np.abs(across - 0.8) < 0.05)] = 1
            marks[inside & (across < 0.05) & dash] = 2
        else:
            marks[inside & (np.abs(across - 0.45) < 0.15)] = 3
    del fine
    foam = _foam(sea, labels, grid, span, rng)
    labels[foam > 0.5] = FOAM
    return labels, {"sea": sea, "damp": damp, "foam": foam, "marks": marks, "span": span}


def _foam(
    sea: np.ndarray, labels: np.ndarray, grid: _Grid, span: float, rng: np.random.Generator
) -> np.ndarray:
    """Foam cover in [0, 1], (H, W) float32, on water only: the swash edge and broken lines
    of breaking waves, with a lacy texture. ``sea``: coarse distance seaward of the waterline.
    """
    surf = rng.uniform(0.10, 0.22) * span
    foam = np.exp(np.maximum(sea, 0) / np.float32(-rng.uniform(0.004, 0.01) * span))
    gaps = grid.noise(1 / 3, 1 / 40)  # rips and unbroken stretches
    for crest in np.sort(rng.uniform(0.2, 1.0, rng.integers(2, 5))) * surf:
        x = sea - np.float32(crest)
        x /= np.float32(rng.uniform(0.006, 0.015) * span)
        line = np.exp(-x * x)
        behind = x < 0  # foam left shoreward of the breaking crest fades slowly
        line[behind] = np.maximum(line[behind], 0.6 * np.exp(x[behind] / 5))
        line *= np.clip(1.0 + 0.8 * gaps + rng.uniform(-0.4, 0.3), 0, 1)
        np.maximum(foam, line, out=foam)
    foam = grid.up(foam)
    foam *= 0.85 + 0.45 * grid.detail(grid.size / 40, 1.5, 0.85)  # lacy texture
    np.clip(foam, 0, 1, out=foam)
    foam[labels != WATER] = 0
    return foam


def _surface(labels: np.ndarray, fields: dict, grid: _Grid, rng: np.random.Generator) -> dict:
    """What each pixel is made of, before the camera.

    Returns ``pair`` (2, 7, 3) float32 (per class, the RGB at ``mix`` 0 and 1), and (H, W)
    float32 ``mix``, shading ``tex``, ``white`` (foam brightness) and ``glint``, plus
    ``marks`` (flat indices of road paint, by code).
    """
    span, sea, marks = fields["span"], fields["sea"], fields["marks"]
    paved = bool(np.any((marks == 1) | (marks == 2)))
    pair = np.zeros((2, 7, 3), np.float32)
    pair[:, WATER] = [[0.04, 0.17, 0.26], [0.22, 0.38, 0.37]]
    pair[:, FOAM] = pair[:, WATER]  # foam is painted over water below
    pair[:, WETSAND] = [[0.40, 0.34, 0.25], [0.33, 0.38, 0.38]]
    pair[:, DRYSAND] = [[0.82, 0.74, 0.58], [0.66, 0.58, 0.45]]
    pair[:, VEG] = [[0.20, 0.31, 0.12], [0.46, 0.41, 0.26]]
    pair[:, ROAD] = (
        [[0.24, 0.24, 0.25], [0.42, 0.41, 0.39]]
        if paved
        else [[0.58, 0.53, 0.44], [0.47, 0.42, 0.35]]
    )
    pair *= (rng.uniform(0.92, 1.08, (1, 7, 1)) * rng.uniform(0.97, 1.03, (1, 7, 3))).astype(
        np.float32
    )

    patches_c = grid.noise(1 / 4, 1 / 60, 0.55)
    patches = grid.up(patches_c)
    grain = grid.detail(4, 1.0, 0.7)
    mix = np.zeros(grid.shape, np.float32)
    tex = grain * np.float32(0.04)
    tex += 1

    # water: darker when deeper, swell crests parallel to the shore
    water = labels <= FOAM
    shallow = np.clip(1 - sea / np.float32(0.25 * span), 0, 1) ** 2 + 0.15 * patches_c
    mix[water] = grid.up(shallow)[water]
    swell = np.sin(sea * np.float32(2 * np.pi / (0.02 * span)) + 3 * patches_c)
    swell *= 0.06 + 0.03 * patches_c
    tex[water] += grid.up(swell)[water]
    del water, shallow, swell
    # wet sand: a glossy film of water near the waterline, like very shallow water
    wet = labels == WETSAND
    film = np.clip(1 + sea / np.float32(rng.uniform(0.02, 0.05) * span), 0, 1)
    film *= np.clip(0.8 + 0.4 * patches_c, 0, 1)
    mix[wet] = grid.up(film)[wet]
    tex[wet] += 0.05 * patches[wet]
    del wet, film
    # dry sand: damp and darker near the wet sand, wind ripples
    dry = labels == DRYSAND
    damp = np.clip(1 - fields["damp"] / np.float32(0.03 * span), 0, 1)
    mix[dry] = np.clip(grid.up(0.3 + 0.25 * patches_c + 0.5 * damp)[dry], 0, 1)
    ripples = grid.axes(rng.uniform(0, 2 * np.pi))[0]
    ripples *= np.float32(2 * np.pi / max(5 / grid.size, 0.01))
    ripples += 2.5 * patches_c
    np.sin(ripples, out=ripples)
    ripples *= np.clip(0.6 + 0.5 * patches_c, 0, 1)
    tex[dry] += 0.035 * grid.up(ripples)[dry]
    del dry, damp, ripples
    # plants: clumpy, self-shadowed; road: worn patches and ruts
    veg = labels == VEG
    mix[veg] = np.clip(0.45 + 0.5 * patches[veg], 0, 1)
    leaves = grid.detail(grid.size / 50, 1.0, 0.85)
    tex[veg] = np.clip(0.85 + 0.35 * leaves[veg], 0.25, 1.7)
    del leaves
    road = labels == ROAD
    mix[road] = np.clip(0.35 + 0.25 * patches[road], 0, 1)
    tex[marks == 3] *= 0.8
    del road, patches

    # plants cast soft shadows on the sand beside them
    sun = rng.uniform(0, 2 * np.pi)
    reach = max(1.0, 0.004 * grid.size / grid.step)
    shadow = grid.down(veg.astype(np.float32))
    shadow = _shifted(shadow, round(reach * np.cos(sun)), round(reach * np.sin(sun)))
    shadow = grid.up(cv2.blur(shadow, (int(reach) | 1, int(reach) | 1)))
    shadow[veg] = 0
    shadow *= -0.4
    shadow += 1
    tex *= shadow
    del shadow, veg

    foam = fields["foam"]
    glint = grid.detail(6, 1.0, 0.6)
    glint -= 2.4
    glint *= 2
    np.clip(glint, 0, 1, out=glint)
    glint *= grid.up(np.clip(0.5 + 0.5 * grid.noise(1 / 2, 1 / 20), 0, 1))
    glint *= 1 - foam
    glint[labels > FOAM] = 0
    tex *= 1 - foam
    white = foam
    white *= 0.95 + 0.05 * grain
    lines = {code: np.flatnonzero(marks == code) for code in _LINE_RGB}
    return {"pair": pair, "mix": mix, "tex": tex, "white": white, "glint": glint, "lines": lines}


def _shifted(field: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``field`` moved by (dx, dy) px, zero-filled, same shape."""
    h, w = field.shape
    out = np.zeros_like(field)
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = field[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _photograph(labels: np.ndarray, look: dict, grid: _Grid, rng: np.random.Generator):
    """Light falloff, vignetting, exposure, lens blur and sensor noise -> (H, W, 3) uint8."""
    h, w = grid.shape
    x = np.linspace(-1, 1, w, dtype=np.float32)
    y = np.linspace(-h / w, h / w, h, dtype=np.float32)
    tilt, slope = rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.15)
    vignette = rng.uniform(0.12, 0.25)
    gain = (slope * np.cos(tilt) * x - vignette * x * x)[None, :] + (
        1 + slope * np.sin(tilt) * y - vignette * y * y
    )[:, None]
    if rng.random() < 0.4:  # a passing cloud shadow
        gain *= grid.up(1 - 0.25 * np.clip(grid.noise(1 / 2, 1 / 30) - 0.3, 0, 1))
    for name in ("tex", "white", "glint"):
        look[name] *= gain
    del gain
    exposure = rng.uniform(0.92, 1.08) * rng.uniform(0.96, 1.04, 3)
    blur = rng.uniform(0.5, 0.9)
    pair, mix = look["pair"], look["mix"]
    out = np.empty((h, w, 3), np.uint8)
    for c in range(3):
        plane = pair[0, :, c][labels]
        plane += (pair[1, :, c] - pair[0, :, c])[labels] * mix
        flat = plane.reshape(-1)
        for code, where in look["lines"].items():
            flat[where] = _LINE_RGB[code][c]
        plane *= look["tex"]
        plane += np.float32(_FOAM_RGB[c]) * look["white"]
        plane += 0.7 * look["glint"]
        plane *= np.float32(exposure[c])
        cv2.GaussianBlur(plane, (0, 0), blur, dst=plane)
        noise = np.sqrt(np.maximum(plane, 0))
        noise *= 0.012
        noise += 0.004
        noise *= _white(grid.rng, grid.shape)
        plane += noise
        del noise
        plane *= 255
        plane += 0.5
        np.clip(plane, 0, 255, out=plane)
        out[..., c] = plane
    return out
