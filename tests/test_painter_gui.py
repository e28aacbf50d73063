"""The stroke painter: its pure parts without a display, then real windows under Xvfb.

The GUI tests run ``paint_strokes`` in a subprocess on a virtual X display and drive it like a
user with ``xdotool`` (pointer and keys through XTEST), then read what it saved.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from dltools.errors import DltoolsError
from dltools.figures.display import overlay, to_display
from dltools.gui.painter import (
    PaintState,
    Stroke,
    View,
    apply_key,
    draw_stroke,
    paint_strokes,
    rank_boxes,
    render_strokes,
)
from dltools.io.images import read_image, write_image
from dltools.io.results import read_result

ESC = 27

# -- pure parts ------------------------------------------------------------------------------


def test_windows_tile_the_displayed_image_exactly():
    view = View((1013, 1529), 0.2, 128)
    assert view.shape == (203, 306)
    boxes = view.windows()
    assert len(boxes) == 2 * 3
    covered = np.zeros(view.shape, int)
    for y0, y1, x0, x1 in boxes:
        assert 0 < y1 - y0 <= 128 and 0 < x1 - x0 <= 128
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all()
    assert boxes[0] == (0, 128, 0, 128) and boxes[-1] == (128, 203, 256, 306)


def test_display_pixels_map_to_the_full_resolution_pixel_under_them():
    view = View((1000, 1500), 0.2, 100)
    assert view.to_full(0, 0) == (2, 2)  # centre of the 5x5 block
    assert view.to_full(10, 3) == (52, 17)
    assert view.to_full(299, 199) == (1497, 997)
    assert view.full_radius(5) == 25
    assert View((100, 100), 2.0, 50).to_full(199, 199) == (99, 99)  # zoomed in, clipped
    # the on-screen view samples exactly those pixels
    cols = np.broadcast_to(np.arange(1500), (1000, 1500))
    shown = view.sample(cols, (0, 4, 10, 14))
    assert shown.shape == (4, 4)
    assert shown[0].tolist() == [view.to_full(x, 0)[0] for x in range(10, 14)]


def test_a_fast_drag_paints_a_continuous_band():
    sparse = np.zeros((100, 400), np.uint8)
    draw_stroke(sparse, Stroke(3, 4, ((10, 20), (390, 80))))  # two far-apart mouse positions
    xs = np.arange(10, 391)
    ys = np.round(20 + (xs - 10) * 60 / 380).astype(int)
    for dy in range(-3, 4):  # the whole brush width, every column: no dotted gaps
        assert (sparse[ys + dy, xs] == 3).all()
    assert sparse[50, 50] == 0  # far from the line
    assert set(np.unique(sparse)) == {0, 3}


def test_a_click_paints_a_disc_of_the_brush_radius():
    sparse = np.zeros((50, 50), np.uint8)
    draw_stroke(sparse, Stroke(1, 6, ((25, 25),)))
    yy, xx = np.mgrid[:50, :50]
    dist = np.hypot(yy - 25, xx - 25)
    assert (sparse[dist <= 5.5] == 1).all() and (sparse[dist > 7] == 0).all()


def test_undo_restores_what_the_undone_stroke_covered():
    base = np.zeros((60, 60), np.uint8)
    base[0:5, 0:5] = 2  # resumed strokes
    a = Stroke(1, 3, ((5, 30), (55, 30)))  # horizontal, class 1
    b = Stroke(2, 3, ((30, 5), (30, 55)))  # vertical, crosses a
    both = render_strokes(base, [a, b])
    assert both[30, 30] == 2
    undone = render_strokes(base, [a])
    assert undone[30, 30] == 1 and undone[10, 30] == 0 and (undone[0:5, 0:5] == 2).all()
    assert base.max() == 2 and base[30, 30] == 0  # base untouched


def test_keys_walk_classes_then_windows_and_set_the_brush():
    s = PaintState(n_windows=2, n_classes=3, brush=2)
    s, undo = apply_key(s, ESC)
    assert (s.window, s.label, undo) == (0, 2, False)
    s, _ = apply_key(s, ESC)
    s, _ = apply_key(s, ESC)  # after the last class: next window, first class
    assert (s.window, s.label, s.finished) == (1, 1, False)
    s, undo = apply_key(s, ord("z"))
    assert undo and (s.window, s.label) == (1, 1)
    for key in (ord("-"), ord("-"), ord("-")):
        s, _ = apply_key(s, key)
    assert s.brush == 1
    s, _ = apply_key(s, ord("+"))
    assert s.brush == 2
    assert apply_key(s, ord("x")) == (s, False)
    assert apply_key(s, ord("s"))[0].finished  # skipping the last window ends painting
    assert apply_key(PaintState(3, 2), ord("s"))[0].window == 1
    assert apply_key(PaintState(3, 2), ord("q"))[0].finished


def test_boxes_rank_by_mean_uncertainty_and_nodata_boxes_come_last():
    view = View((200, 300), 0.5, 50)  # displayed 100 x 150: six boxes of 50
    values = np.zeros((200, 300), np.float32)
    values[100:, 200:] = 0.9  # the last box
    values[:100, 100:200] = 0.4  # the second
    values[:100, :100] = np.nan  # the first: nodata
    order = rank_boxes(view, view.windows(), values)
    assert order[:2] == [5, 1] and order[-1] == 0


def test_display_shows_three_bands_stretched_to_uint8():
    rng = np.random.default_rng(0)
    img = rng.integers(1000, 3000, (40, 50, 4)).astype(np.uint16)
    shown = to_display(img)
    assert shown.shape == (40, 50, 3) and shown.dtype == np.uint8
    assert shown.min() == 0 and shown.max() == 255
    grey = to_display(rng.random((10, 12)).astype(np.float32))
    assert (grey[..., 0] == grey[..., 2]).all()
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert (to_display(rgb) == rgb).all()


def test_overlay_tints_only_painted_pixels():
    rgb = np.full((4, 4, 3), 100, np.uint8)
    labels = np.zeros((4, 4), np.uint8)
    labels[1, 2] = 2
    out = overlay(rgb, labels, np.array([[255, 0, 0], [0, 0, 200]], np.uint8))
    assert out[1, 2].tolist() == [50, 50, 150]
    out[1, 2] = 100
    assert (out == 100).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": np.zeros((10, 10), np.uint8)}, "10x10 pixels but the image is 30x20"),
        ({"initial": np.full((20, 30), 3, np.uint8)}, "class 3 but there are 2"),
        ({"scale": 0}, "must be positive"),
    ],
)
def test_bad_arguments_are_refused_before_any_window_opens(kwargs, message):
    image = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(DltoolsError, match=message):
        paint_strokes(image, ["a", "b"], np.zeros((2, 3), np.uint8), **kwargs)
    with pytest.raises(DltoolsError, match="one RGB colour per class"):
        paint_strokes(image, ["a", "b", "c"], np.zeros((2, 3), np.uint8))


# -- real windows under Xvfb -----------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 60  # seconds; generous, CI has 2 busy cores
RETRY_AFTER = 15  # seconds without the next title before a lost key is pressed again
SETTLE = 1.0  # seconds after a key whose effect the title does not show (see Session.key)
NAMES = ["water", "sand"]
HEIGHT, WIDTH = 200, 300
BRUSH = 5

PAINT_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    from dltools.gui.painter import paint_strokes
    from dltools.io.strokes import read_strokes

    image, autosave, result = np.load(sys.argv[1]), sys.argv[2], sys.argv[3]
    scale, window = float(sys.argv[4]), int(sys.argv[5])
    names = ["water", "sand"]
    initial = read_strokes(sys.argv[6], image.shape[:2], names) if len(sys.argv) > 6 else None
    colors = np.array([[0, 0, 255], [255, 200, 0]], np.uint8)
    uncertainty = None
    if Path(sys.argv[0]).name == "paint_uncertain.py":
        def uncertainty(strokes):
            # windows of 150 px: bottom right most uncertain, then top right, then top left;
            # once the bottom right has strokes, top left before top right
            values = np.zeros(strokes.shape, np.float32)
            painted = strokes[150:, 150:].any()
            values[150:, 150:] = 0.1 if painted else 0.9
            values[:150, 150:] = 0.2 if painted else 0.6
            values[:150, :150] = 0.8 if painted else 0.3
            return values
    sparse = paint_strokes(image, names, colors, scale=scale, window=window,
                           initial=initial, autosave_path=Path(autosave), brush=5,
                           uncertainty=uncertainty)
    np.save(result, sparse)
    """
)


@pytest.fixture(scope="module")
def xdisplay():
    """A virtual X display (Xvfb) for this module; yields the environment to run clients in."""
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install xvfb xdotool)")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()  # Xvfb writes its display number once it is ready
    if not number:
        server.kill()
        pytest.skip("Xvfb did not start")
    env = {**os.environ, "DISPLAY": f":{number}", "QT_QPA_PLATFORM": "xcb"}
    yield env
    server.terminate()
    server.wait(timeout=TIMEOUT)


@pytest.fixture
def session(xdisplay, tmp_path):
    """Start the painter on a generated 300x200 image; yields a driver for it."""
    rng = np.random.default_rng(1)
    image = np.clip(rng.normal(120, 30, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    np.save(tmp_path / "image.npy", image)
    (tmp_path / "paint.py").write_text(PAINT_SCRIPT)
    driver = Driver(xdisplay, tmp_path)
    yield driver
    driver.stop()


class Driver:
    """Runs the painter script and plays a user on its window with xdotool."""

    def __init__(self, env: dict, folder: Path):
        self.env = env
        self.folder = folder
        self.doodles = folder / "img_doodles.png"
        self.result = folder / "result.npy"
        self.proc: subprocess.Popen | None = None
        self.window = ""
        self.log = open(folder / "painter.log", "w")  # closed by stop()

    def start(
        self,
        scale: float = 1.0,
        window: int = 300,
        initial: Path | None = None,
        script: str = "paint.py",
    ) -> None:
        if script != "paint.py":
            (self.folder / script).write_text(PAINT_SCRIPT)
        args = [str(self.folder / n) for n in (script, "image.npy")]
        args += [str(self.doodles), str(self.result), str(scale), str(window)]
        args += [str(initial)] if initial else []
        self.proc = subprocess.Popen(
            [sys.executable, *args], env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def start_labeller(self) -> None:
        """Run the real step-2 command line (label_1image_crf.py) on the image, painting at
        full scale in one window; the CRF runs after the last class."""
        image = np.load(self.folder / "image.npy")
        write_image(self.folder / "img.png", image)
        (self.folder / "labels.txt").write_text("\n".join(NAMES) + "\n")
        (self.folder / "colors.txt").write_text("b\ny\n")
        script = REPO / "create_groundtruth" / "label_1image_crf.py"
        args = ["-i", "img.png", "-l", "labels.txt", "-c", "colors.txt", "-s", "1", "-w", "300"]
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args, "--workers", "1"],
            cwd=self.folder,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def xdo(self, *args: str, check: bool = True, timeout: float = TIMEOUT) -> str:
        command = ["xdotool", *args]
        try:
            out = subprocess.run(
                command, env=self.env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"xdotool {' '.join(args)} timed out{self.logs()}") from None
        if check and out.returncode != 0:
            raise AssertionError(f"xdotool {' '.join(args)} failed: {out.stderr}{self.logs()}")
        return out.stdout

    def wait_for_class(
        self, name: str, number: int, window: str = "", timeout: float = TIMEOUT
    ) -> None:
        """Wait until the painting window's title announces class ``name`` (and ``window``,
        e.g. "2/2")."""
        title = f"^{name} - class {number}/{len(NAMES)} - window {window}"
        found = self.xdo("search", "--sync", "--onlyvisible", "--name", title, timeout=timeout)
        self.window = found.split()[0]

    def key_moving_on(self, key: str, name: str, number: int, window: str = "") -> None:
        """Press ``key`` on a window just shown and wait for the title it leads to (see
        :meth:`wait_for_class`). On a loaded machine a key pressed as a window first appears
        can be lost before the window takes input: if the title has not changed after
        :data:`RETRY_AFTER` s, the key is pressed once more."""
        shown = self.xdo("getwindowname", self.window).strip()
        self.key(key)
        try:
            self.wait_for_class(name, number, window, timeout=RETRY_AFTER)
        except AssertionError:
            if self.xdo("getwindowname", self.window, check=False).strip() != shown:
                raise
            self.key(key)
            self.wait_for_class(name, number, window)

    def drag(self, points: list[tuple[int, int]]) -> None:
        """Press the left button at the first point, jump through the rest, release.

        The pauses let the painter see every position: X servers and Qt merge pointer
        motions that queue up, as they do for a real hand. The painter saves its strokes
        after each one: a drag that leads to no save within :data:`RETRY_AFTER` s was lost
        (a window that has just appeared, on a loaded machine) and is made once more."""
        moves = [("mousemove", "--window", self.window, str(x), str(y)) for x, y in points]
        pause = ("sleep", "0.2")
        steps = [arg for move in moves[1:] for arg in (*pause, *move)]
        for wait in (RETRY_AFTER, TIMEOUT):
            before = self.save_stamp()
            self.xdo(*moves[0], "mousedown", "1", *steps, *pause, "mouseup", "1")
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.save_stamp() != before:
                    return
                time.sleep(0.1)
        raise AssertionError(f"the painter saved nothing after the drag, twice{self.logs()}")

    def save_stamp(self) -> tuple[int, int]:
        """(inode, mtime) of the autosaved doodles: each save replaces the file."""
        stat = self.doodles.stat()
        return stat.st_ino, stat.st_mtime_ns

    def key(self, name: str, settle: bool = False) -> None:
        """Press a key with the pointer over the painting window (no window manager: the
        keyboard follows the pointer). OpenCV's Qt backend keeps one pending key: a key
        pressed while the painter is still busy with the last one replaces it. With
        ``settle``, wait :data:`SETTLE` s, so that a key whose effect the title does not show
        is read before the next one."""
        self.xdo("mousemove", "--window", self.window, "5", "5", "key", name, check=False)
        if settle:
            time.sleep(SETTLE)

    def saved(self) -> np.ndarray:
        return read_image(self.doodles)[..., 0]

    def wait_saved(self, condition, what: str) -> np.ndarray:
        """Poll the autosaved doodles until ``condition(sparse)`` holds."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.doodles.exists() and condition(sparse := self.saved()):
                return sparse
            time.sleep(0.1)
        raise AssertionError(f"autosave never showed {what}{self.logs()}")

    def finish(self) -> np.ndarray:
        assert self.proc.wait(timeout=TIMEOUT) == 0, self.logs()
        if (mat := self.folder / "img_mres.mat").exists():  # the labeller ran
            return read_result(mat).sparse
        return np.load(self.result)

    def logs(self) -> str:
        self.log.flush()
        return "\npainter output:\n" + (self.folder / "painter.log").read_text()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        self.log.close()


def close_window(display: str, window: int) -> None:
    """Click a window's close button: send it WM_DELETE_WINDOW, as a window manager would."""
    path = ctypes.util.find_library("X11")
    if path is None:
        pytest.skip("libX11 not found: cannot send WM_DELETE_WINDOW")
    x11 = ctypes.cdll.LoadLibrary(path)

    class ClientMessage(ctypes.Structure):  # XClientMessageEvent, format 32
        _fields_ = [
            ("type", ctypes.c_int),
            ("serial", ctypes.c_ulong),
            ("send_event", ctypes.c_int),
            ("display", ctypes.c_void_p),
            ("window", ctypes.c_ulong),
            ("message_type", ctypes.c_ulong),
            ("format", ctypes.c_int),
            ("data", ctypes.c_long * 5),
        ]

    class XEvent(ctypes.Union):
        _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XSendEvent.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.c_long,
        ctypes.POINTER(XEvent),
    ]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    conn = x11.XOpenDisplay(display.encode())
    assert conn, f"cannot open X display {display}"
    event = XEvent()
    event.xclient.type = 33  # ClientMessage
    event.xclient.window = window
    event.xclient.message_type = x11.XInternAtom(conn, b"WM_PROTOCOLS", 0)
    event.xclient.format = 32
    event.xclient.data[0] = x11.XInternAtom(conn, b"WM_DELETE_WINDOW", 0)
    x11.XSendEvent(conn, window, 0, 0, ctypes.byref(event))
    x11.XCloseDisplay(conn)  # flushes


def band(points: list[tuple[int, int]], half: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels within +-``half`` rows of the polyline ``points`` (x, y),
    every column it crosses; x must increase along it."""
    rows, cols = [], []
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        xs = np.arange(x0, x1 + 1)
        ys = np.round(np.interp(xs, [x0, x1], [y0, y1])).astype(int)
        for dy in range(-half, half + 1):
            rows.append(ys + dy)
            cols.append(xs)
    return np.concatenate(rows), np.concatenate(cols)


WATER = [(20, 40), (150, 50), (280, 40)]  # long, fast: only three pointer positions
UNDONE = [(20, 150), (280, 150)]
SAND = [(30, 100), (270, 115)]


@pytest.mark.gui
@pytest.mark.slow
def test_painting_two_classes_with_undo_in_the_labeller(session):
    session.start_labeller()
    session.wait_for_class("water", 1)
    session.drag(WATER)
    session.drag(UNDONE)
    session.wait_saved(lambda s: s[150, 150] == 1, "the second water stroke")
    session.key("z")
    session.wait_saved(lambda s: s[150, 150] == 0, "the undo")
    session.key("Escape")
    session.wait_for_class("sand", 2)
    session.drag(SAND)
    session.wait_saved(lambda s: s[108, 150] == 2, "the sand stroke")
    session.key("Escape")
    result = session.finish()

    assert result.shape == (HEIGHT, WIDTH) and result.dtype == np.uint8
    assert (session.saved() == result).all()  # the autosaved doodles hold the mat's `sparse`
    dense = read_result(session.folder / "img_mres.mat").class_map
    assert (dense[band(WATER, 0)] == 0).all() and (dense[band(SAND, 0)] == 1).all()
    inner = BRUSH - 2  # the brush covers +-5 px around the path; test +-3
    assert (result[band(WATER, inner)] == 1).all()  # continuous along the whole drag
    assert (result[band(SAND, inner)] == 2).all()
    assert (result[140:160] == 0).all()  # the undone stroke is gone
    assert set(np.unique(result)) == {0, 1, 2}
    # nothing far from the strokes: the painted area is about length x brush width
    painted = np.count_nonzero(result)
    assert 500 * 9 < painted < 550 * 13


@pytest.mark.gui
@pytest.mark.slow
def test_killed_painter_leaves_its_strokes_and_painting_resumes(session):
    session.start()
    session.wait_for_class("water", 1)
    session.drag(WATER)
    saved = session.wait_saved(lambda s: s[40, 280] == 1, "the water stroke")
    time.sleep(0.5)  # idle: nothing else is being written
    session.proc.send_signal(signal.SIGKILL)
    session.proc.wait(timeout=TIMEOUT)

    on_disk = session.saved()
    assert (on_disk == saved).all() and set(np.unique(on_disk)) == {0, 1}
    assert (on_disk[band(WATER, BRUSH - 2)] == 1).all()
    assert [p.name for p in session.folder.iterdir() if p.name.startswith(".")] == []

    previous = session.folder / "previous_doodles.png"
    shutil.copy(session.doodles, previous)
    session.start(initial=previous)
    session.wait_for_class("water", 1)
    session.key_moving_on("Escape", "sand", 2)
    session.drag(SAND)
    session.wait_saved(lambda s: s[108, 150] == 2, "the sand stroke")
    session.key("q")
    result = session.finish()
    assert (result[band(WATER, BRUSH - 2)] == 1).all()  # resumed strokes kept
    assert (result[band(SAND, BRUSH - 2)] == 2).all()
    assert (session.saved() == result).all()


@pytest.mark.gui
@pytest.mark.slow
def test_closing_the_window_ends_painting_with_the_strokes_so_far(session):
    session.start()
    session.wait_for_class("water", 1)
    session.drag(WATER)
    session.wait_saved(lambda s: s[40, 280] == 1, "the water stroke")
    close_window(session.env["DISPLAY"], int(session.window))
    result = session.finish()  # exits normally, returning what was painted
    assert (result[band(WATER, BRUSH - 2)] == 1).all()
    assert set(np.unique(result)) == {0, 1}
    assert (session.saved() == result).all()


@pytest.mark.gui
@pytest.mark.slow
def test_scaled_view_in_windows_records_strokes_at_full_resolution(session):
    # shown at 0.7: 210x140 displayed pixels in six 70x70 windows (Qt windows are >= 69 px)
    session.start(scale=0.7, window=70)
    session.wait_for_class("water", 1, "1/6")
    session.key_moving_on("s", "water", 1, "2/6")  # nothing to label in window 1
    session.drag([(10, 35), (60, 35)])  # displayed pixels of the second window (x from 70)
    session.wait_saved(lambda s: s.any(), "the stroke")
    session.key("q")
    result = session.finish()
    # displayed x 80..130, y 35 -> full x 114..186, y 50; brush 5 displayed -> 7 full
    assert (result[45:56, 116:185] == 1).all()
    assert not result[:40].any() and not result[61:].any()
    assert not result[:, :105].any() and not result[:, 196:].any()
    assert (session.saved() == result).all()


def test_windows_are_visited_most_uncertain_first_and_r_re_ranks_them(session):
    """Four 150-px windows ranked by an uncertainty function: the first is the bottom right;
    after painting there, `u` shows the uncertainty and `r` re-ranks, so the second window is
    the top left (without `r` it would be the top right)."""
    session.start(window=150, script="paint_uncertain.py")
    session.wait_for_class("water", 1, "1/4")
    session.drag([(20, 25), (120, 25)])  # the bottom-right window is 150 x 50
    session.wait_saved(lambda s: s[150:, 150:].any(), "a stroke in the bottom-right window")
    session.key("u", settle=True)
    session.key("r", settle=True)
    session.key("Escape")
    session.wait_for_class("sand", 2, "1/4")
    session.key("Escape")
    session.wait_for_class("water", 1, "2/4")
    session.drag([(20, 75), (120, 75)])
    session.wait_saved(lambda s: s[:150, :150].any(), "a stroke in the top-left window")
    session.key("q")
    result = session.finish()
    assert result[150:, 150:].any() and result[:150, :150].any()
    assert not result[:150, 150:].any() and not result[150:, :150].any()
