"""Painting class strokes ("doodles") on an image with the mouse, in OpenCV windows.

The image is shown at ``scale`` and worked through in ``window`` x ``window`` pieces (displayed
pixels); every piece gets one pass per class. Strokes are painted on the displayed pixels and
recorded at full resolution in a *stroke raster*: (H, W) uint8 (uint16 above 254 classes),
0 = no stroke, k = class k (1-based). The stroke raster is saved after every stroke and undo, so
a crash or a closed window loses nothing, and painting resumes from a previous save.

The pure parts (:class:`View`, :class:`Stroke`, :func:`render_strokes`, :func:`apply_key`) need
no display; :func:`paint_strokes` wires them to the windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from dltools.errors import DltoolsError
from dltools.figures.display import overlay, to_display
from dltools.io.images import write_image
from dltools.io.strokes import stroke_dtype
from dltools.raster.windows import iter_windows

MAIN_WINDOW = "dltools doodle"
OVERVIEW_WINDOW = "dltools doodle overview"
OVERVIEW_SIZE = 400  # longest side of the overview, displayed pixels
KEY_ESC = 27
BRUSH_MAX = 200
HELP = "+/- brush  z undo  Esc next class  s skip window  q finish"
HELP_UNCERTAIN = "  u uncertainty  r re-rank"


@dataclass(frozen=True)
class View:
    """How a full-resolution (H, W) image maps to the screen: scaled by ``scale``, cut into
    ``window`` x ``window`` pieces of displayed pixels."""

    full_shape: tuple[int, int]
    scale: float
    window: int

    @property
    def shape(self) -> tuple[int, int]:
        """Displayed (rows, cols) of the whole image."""
        return tuple(max(1, round(n * self.scale)) for n in self.full_shape)

    def windows(self) -> list[tuple[int, int, int, int]]:
        """The pieces as (y0, y1, x0, x1) in displayed pixels, row by row (edge ones smaller)."""
        return [
            (w.row_off, w.row_off + w.height, w.col_off, w.col_off + w.width)
            for w in iter_windows(*self.shape, self.window)
        ]

    def _axis_to_full(self, d: np.ndarray, axis: int) -> np.ndarray:
        factor = self.full_shape[axis] / self.shape[axis]
        full = np.round((np.asarray(d, np.float64) + 0.5) * factor - 0.5)
        return np.clip(full, 0, self.full_shape[axis] - 1).astype(np.int64)

    def to_full(self, x: float, y: float) -> tuple[int, int]:
        """A displayed pixel (x, y) of the whole image -> the full-resolution pixel (x, y)."""
        return int(self._axis_to_full(x, 1)), int(self._axis_to_full(y, 0))

    def full_radius(self, radius: int) -> int:
        """A brush radius in displayed pixels -> full-resolution pixels (at least as wide)."""
        return round(radius / self.scale)

    def sample(self, full: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Nearest-neighbour view of a full-resolution raster over the displayed ``box``
        (y0, y1, x0, x1): (y1 - y0, x1 - x0) of ``full``'s dtype."""
        y0, y1, x0, x1 = box
        rows = self._axis_to_full(np.arange(y0, y1), 0)
        cols = self._axis_to_full(np.arange(x0, x1), 1)
        return full[np.ix_(rows, cols)]


@dataclass(frozen=True)
class Stroke:
    """One mouse drag: class ``label`` (1-based), brush ``radius`` and the (x, y) positions it
    passed through, all at full resolution."""

    label: int
    radius: int
    points: tuple[tuple[int, int], ...]


def draw_stroke(strokes: np.ndarray, stroke: Stroke) -> None:
    """Paint ``stroke`` into the stroke raster ``strokes`` in place: round brush, straight
    segments between successive points, so a fast drag leaves no gaps."""
    pts = np.asarray(stroke.points, np.int32)
    cv2.circle(strokes, stroke.points[0], stroke.radius, stroke.label, -1)  # a click paints too
    cv2.polylines(strokes, [pts], False, stroke.label, 2 * stroke.radius + 1)


def render_strokes(base: np.ndarray, drawn: Sequence[Stroke]) -> np.ndarray:
    """A copy of the stroke raster ``base`` with the ``drawn`` strokes painted over it in order."""
    out = base.copy()
    for stroke in drawn:
        draw_stroke(out, stroke)
    return out


def rank_boxes(
    view: View, boxes: Sequence[tuple[int, int, int, int]], uncertainty: np.ndarray
) -> list[int]:
    """Indices of displayed ``boxes`` (y0, y1, x0, x1), most uncertain first (ties keep their
    order), by the mean of the full-resolution (H, W) ``uncertainty`` (NaN = nodata) over each."""
    means = []
    for box in boxes:
        values = view.sample(uncertainty, box)
        means.append(float(np.nanmean(values)) if np.isfinite(values).any() else -1.0)
    return sorted(range(len(boxes)), key=lambda i: -means[i])


@dataclass(frozen=True)
class PaintState:
    """Where painting stands: the window (0-based), the class (1-based), the brush radius in
    displayed pixels, and whether painting is over."""

    n_windows: int
    n_classes: int
    window: int = 0
    label: int = 1
    brush: int = 5
    finished: bool = False


def apply_key(state: PaintState, key: int) -> tuple[PaintState, bool]:
    """One key press -> (new state, whether to undo the last stroke).

    ``+``/``=`` and ``-`` change the brush, ``z`` undoes, Esc passes to the next class (after the
    last class, to the next window; after the last window, painting is finished), ``s`` skips the
    rest of the window, ``q`` finishes. Other keys change nothing.
    """
    if key in (ord("+"), ord("=")):
        return replace(state, brush=min(state.brush + 1, BRUSH_MAX)), False
    if key == ord("-"):
        return replace(state, brush=max(state.brush - 1, 1)), False
    if key == ord("z"):
        return state, True
    if key == ord("q"):
        return replace(state, finished=True), False
    if key == KEY_ESC and state.label < state.n_classes:
        return replace(state, label=state.label + 1), False
    if key in (KEY_ESC, ord("s")):
        if state.window + 1 >= state.n_windows:
            return replace(state, finished=True), False
        return replace(state, window=state.window + 1, label=1), False
    return state, False


class _Painter:
    """The windows, the mouse and the strokes of one painting session."""

    def __init__(
        self, display, view, class_names, colors, initial, autosave_path, brush, uncertainty
    ):
        self.display = display  # (rows, cols, 3) uint8 RGB at display scale
        self.view = view
        self.names = list(class_names)
        self.colors = colors
        self.initial = initial
        self.strokes = initial.copy()
        self.drawn: list[Stroke] = []
        self.autosave_path = autosave_path
        self.boxes = view.windows()
        self.state = PaintState(len(self.boxes), len(self.names), brush=brush)
        self.uncertainty = uncertainty  # strokes -> (H, W) uncertainty or None; see paint_strokes
        self.values: np.ndarray | None = None
        self.show_values = False
        self.rerank(keep=0)
        self.points: list[tuple[int, int]] | None = None  # the stroke being dragged
        self.radius = 0  # its full-resolution brush radius
        self.shown_title = ""
        self.cursor: tuple[int, int] | None = None  # mouse position in the window
        rows, cols = view.shape
        self.ov_factor = min(1.0, OVERVIEW_SIZE / max(rows, cols))
        self.ov_view = View(view.full_shape, view.scale * self.ov_factor, 1)
        self.ov_base = cv2.resize(display, self.ov_view.shape[::-1], interpolation=cv2.INTER_AREA)

    # -- windows -------------------------------------------------------------------------
    def open(self) -> None:
        flags = cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL
        for name in (MAIN_WINDOW, OVERVIEW_WINDOW):
            cv2.namedWindow(name, flags)
        cv2.moveWindow(MAIN_WINDOW, 0, 0)
        cv2.moveWindow(OVERVIEW_WINDOW, min(self.view.window, self.view.shape[1]) + 20, 0)
        cv2.setMouseCallback(MAIN_WINDOW, self.on_mouse)

    def closed(self) -> bool:
        return not all(_visible(name) for name in (MAIN_WINDOW, OVERVIEW_WINDOW))

    def title(self) -> str:
        s = self.state
        return (
            f"{self.names[s.label - 1]} - class {s.label}/{s.n_classes} - "
            f"window {s.window + 1}/{s.n_windows} - dltools doodle"
        )

    def show(self) -> None:
        box = self.boxes[self.state.window]
        y0, y1, x0, x1 = box
        base = self.display[y0:y1, x0:x1]
        if self.show_values and self.values is not None:
            base = cv2.addWeighted(base, 0.5, self.heat(box), 0.5, 0)
        img = overlay(base, self.view.sample(self.strokes, box), self.colors)
        color = tuple(int(c) for c in self.colors[self.state.label - 1])
        if self.cursor is not None:
            cv2.circle(img, self.cursor, self.state.brush, color, 1, cv2.LINE_AA)
        text = f"{self.names[self.state.label - 1]}  brush {self.state.brush}"
        _text(img, text, (8, 18), 0.5, color)
        keys = HELP + (HELP_UNCERTAIN if self.uncertainty is not None else "")
        _text(img, keys, (8, img.shape[0] - 8), 0.35, (255, 255, 255))
        cv2.imshow(MAIN_WINDOW, img[..., ::-1])
        title = self.title()
        if title != self.shown_title:
            cv2.setWindowTitle(MAIN_WINDOW, title)
            self.shown_title = title

    def show_overview(self) -> None:
        rows, cols = self.ov_view.shape
        labels = self.ov_view.sample(self.strokes, (0, rows, 0, cols))
        img = overlay(self.ov_base, labels, self.colors)
        y0, y1, x0, x1 = (round(v * self.ov_factor) for v in self.boxes[self.state.window])
        cv2.rectangle(img, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (255, 255, 0), 2)
        cv2.imshow(OVERVIEW_WINDOW, img[..., ::-1])

    def rerank(self, keep: int) -> None:
        """Recompute the uncertainty from the strokes so far; the windows after the first
        ``keep`` are then visited most uncertain first (no-op without an uncertainty function
        or while it cannot tell)."""
        if self.uncertainty is None:
            return
        values = self.uncertainty(self.strokes)
        if values is None:
            return
        self.values = values
        rest = self.boxes[keep:]
        self.boxes = self.boxes[:keep] + [rest[i] for i in rank_boxes(self.view, rest, values)]

    def heat(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """The uncertainty over ``box`` as an RGB heat map (dark blue = sure, red = a tie)."""
        values = np.nan_to_num(self.view.sample(self.values, box), nan=0.0)
        scaled = np.clip(values * 255, 0, 255).astype(np.uint8)
        return cv2.applyColorMap(scaled, cv2.COLORMAP_JET)[..., ::-1]

    # -- strokes -------------------------------------------------------------------------
    def to_full(self, x: int, y: int) -> tuple[int, int]:
        y0, y1, x0, x1 = self.boxes[self.state.window]
        x = min(max(x, 0), x1 - x0 - 1)
        y = min(max(y, 0), y1 - y0 - 1)
        return self.view.to_full(x0 + x, y0 + y)

    def on_mouse(self, event: int, x: int, y: int, flags: int, param) -> None:
        self.cursor = (x, y)
        if event == cv2.EVENT_LBUTTONDOWN:
            self.finish_stroke()
            self.points = [self.to_full(x, y)]
            self.radius = self.view.full_radius(self.state.brush)
            draw_stroke(self.strokes, Stroke(self.state.label, self.radius, tuple(self.points)))
        elif event == cv2.EVENT_MOUSEMOVE and self.points is not None:
            point = self.to_full(x, y)
            if point != self.points[-1]:
                self.points.append(point)
                segment = Stroke(self.state.label, self.radius, tuple(self.points[-2:]))
                draw_stroke(self.strokes, segment)
        elif event == cv2.EVENT_LBUTTONUP and self.finish_stroke():
            self.show_overview()
        self.show()

    def finish_stroke(self) -> bool:
        """Commit and save the stroke being dragged; False when there is none."""
        if self.points is None:
            return False
        self.drawn.append(Stroke(self.state.label, self.radius, tuple(self.points)))
        self.points = None
        self.save()
        return True

    def undo(self) -> None:
        if self.drawn:
            self.drawn.pop()
            self.strokes = render_strokes(self.initial, self.drawn)
            self.save()

    def save(self) -> None:
        if self.autosave_path is not None:
            write_image(self.autosave_path, self.strokes)

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> np.ndarray:
        self.open()
        self.save()
        self.show()
        self.show_overview()
        try:
            while not self.state.finished:
                key = cv2.waitKey(20)
                if self.closed():
                    break
                if key == -1:
                    continue
                changed = self.finish_stroke()
                if key in (ord("u"), ord("r")) and self.uncertainty is not None:
                    if key == ord("r"):
                        self.rerank(keep=self.state.window + 1)
                    else:
                        self.show_values = not self.show_values
                    self.show()
                    self.show_overview()
                    continue
                old = self.state
                self.state, undo = apply_key(self.state, key)
                if undo:
                    self.undo()
                if not self.state.finished:
                    self.show()
                    if changed or undo or self.state.window != old.window:
                        self.show_overview()
        finally:
            self.finish_stroke()
            for name in (MAIN_WINDOW, OVERVIEW_WINDOW):
                if _visible(name):  # not closed by hand
                    cv2.destroyWindow(name)
            cv2.waitKey(1)
        return self.strokes


def _visible(name: str) -> bool:
    """Whether window ``name`` is open (the Qt backend raises once its last window is gone)."""
    try:
        return cv2.getWindowProperty(name, cv2.WND_PROP_VISIBLE) >= 1
    except cv2.error:
        return False


def _text(img: np.ndarray, text: str, origin: tuple[int, int], size: float, rgb) -> None:
    """Readable text on any background: coloured letters over a black shadow (``img`` is RGB)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    x, y = origin
    for dx, dy in ((1, 1), (-1, -1), (1, -1), (-1, 1)):
        cv2.putText(img, text, (x + dx, y + dy), font, size, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, text, origin, font, size, tuple(int(c) for c in rgb), 1, cv2.LINE_AA)


def paint_strokes(
    image: np.ndarray,
    class_names: Sequence[str],
    colors: np.ndarray,
    *,
    scale: float = 0.2,
    window: int = 500,
    initial: np.ndarray | None = None,
    autosave_path: Path | None = None,
    brush: int = 5,
    uncertainty: Callable[[np.ndarray], np.ndarray | None] | None = None,
) -> np.ndarray:
    """Paint strokes for ``class_names`` on ``image`` interactively; return the stroke raster.

    ``image`` is (H, W) or (H, W, C) of any dtype (the first three bands are shown, stretched to
    uint8); ``colors`` is (K, 3) uint8 RGB, one row per class. The image is shown at ``scale`` in
    ``window`` x ``window`` pieces (displayed pixels); ``brush`` is the starting brush radius in
    displayed pixels. ``initial`` (H, W) holds strokes to resume from. The result, (H, W) uint8
    (uint16 above 254 classes; 0 = no stroke, k = class k), is also written to ``autosave_path``
    (a PNG) after every stroke and undo. Closing a window ends painting with what was painted.

    With ``uncertainty`` (the stroke raster so far -> (H, W) float uncertainty in [0, 1], NaN =
    nodata, or None when it cannot tell yet), the windows are visited most uncertain first; key
    ``u`` shows or hides the uncertainty over the window, key ``r`` recomputes it from the
    strokes so far and re-ranks the windows not yet visited.
    """
    n = len(class_names)
    if n == 0:
        raise DltoolsError("no classes to paint: the label list is empty")
    colors = np.asarray(colors)
    if colors.ndim != 2 or colors.shape[1] != 3 or len(colors) < n:
        raise DltoolsError(
            f"need one RGB colour per class: {n} classes but colours of shape {colors.shape}"
        )
    if scale <= 0 or window < 1 or brush < 1:
        raise DltoolsError(
            f"scale, window and brush must be positive (got {scale}, {window}, {brush})"
        )
    shape = image.shape[:2]
    if initial is None:
        initial = np.zeros(shape, stroke_dtype(n))
    elif initial.shape != shape:
        raise DltoolsError(
            f"previous strokes are {initial.shape[1]}x{initial.shape[0]} pixels but the image is "
            f"{shape[1]}x{shape[0]}: read them with read_strokes to resize them"
        )
    elif initial.size and int(initial.max()) > n:
        raise DltoolsError(f"previous strokes hold class {int(initial.max())} but there are {n}")
    view = View(shape, scale, window)
    display = cv2.resize(to_display(image), view.shape[::-1], interpolation=cv2.INTER_AREA)
    painter = _Painter(
        display,
        view,
        class_names,
        colors[:n].astype(np.uint8),
        initial.astype(stroke_dtype(n)),
        autosave_path,
        brush,
        uncertainty,
    )
    return painter.run()
