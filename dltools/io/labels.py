"""Class lists: ``labels.txt``, ``colors.txt`` and ``labeldefs.txt``.

- labels.txt: one class name per line.
- colors.txt: one matplotlib colour per line (``r``, ``gray``, ``#D2691E``, ...), in the order
  of labels.txt.
- labeldefs.txt: ``name, R, G, B`` per line (0-255).

:class:`Classes` is the one class table of every step; :func:`read_classes` builds it from
any of these files.

Reading tolerates CRLF line ends, a byte-order mark, spaces around entries, blank lines and a
missing final newline. Colours are ``(K, 3)`` uint8 RGB arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_rgb

from dltools.errors import DltoolsError
from dltools.io.outputs import atomic_path


def _read_lines(path: str | os.PathLike) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the non-blank lines of a text file."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DltoolsError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DltoolsError(f"{path}: cannot read this text file ({err})") from err
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _check_names(names: Sequence[str], path: str | os.PathLike) -> list[str]:
    if not names:
        raise DltoolsError(f"{path}: no class names in this file")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DltoolsError(f"{path}: class name(s) listed twice: {', '.join(duplicates)}")
    return list(names)


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names, one per non-blank line, stripped; duplicates are an error."""
    return _check_names([text for _, text in _read_lines(path)], path)


def read_colors(path: str | os.PathLike) -> np.ndarray:
    """``(K, 3)`` uint8 RGB from one matplotlib colour spec per line."""
    rgb = []
    for number, spec in _read_lines(path):
        try:
            rgb.append(to_rgb(spec))
        except ValueError:
            raise DltoolsError(
                f"{path}, line {number}: {spec!r} is not a matplotlib colour "
                "(use a name such as 'gray', a single letter such as 'r', or hex such as '#D2691E')"
            ) from None
    if not rgb:
        raise DltoolsError(f"{path}: no colours in this file")
    return np.round(np.array(rgb) * 255).astype(np.uint8)


def read_labeldefs(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Names and ``(K, 3)`` uint8 RGB colours from ``name, R, G, B`` lines."""
    names, rgb = [], []
    for number, text in _read_lines(path):
        fields = [field.strip() for field in text.split(",")]
        try:
            if len(fields) != 4 or not fields[0]:
                raise ValueError
            values = [int(field) for field in fields[1:]]
            if not all(0 <= v <= 255 for v in values):
                raise ValueError
        except ValueError:
            raise DltoolsError(
                f"{path}, line {number}: expected 'name, R, G, B' with R, G, B from 0 to 255, "
                f"got {text!r}"
            ) from None
        names.append(fields[0])
        rgb.append(values)
    return _check_names(names, path), np.array(rgb, dtype=np.uint8).reshape(-1, 3)


class Classes(NamedTuple):
    """A class table: names and their ``(K, 3)`` uint8 RGB colours; label value ``k`` is
    ``names[k - 1]``. Unpacks as ``names, colors``."""

    names: list[str]
    colors: np.ndarray


def default_colors(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB colours from matplotlib's tab10 (tab20 beyond 10 classes)."""
    table = colormaps["tab10" if n <= 10 else "tab20"]
    rgb = [table(i % table.N)[:3] for i in range(n)]
    return np.round(np.array(rgb).reshape(-1, 3) * 255).astype(np.uint8)


def _is_labeldefs(path: str | os.PathLike) -> bool:
    """True if ``path`` holds ``name, R, G, B`` lines rather than one colour per line."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig") if path.is_file() else ""
    return any(line.count(",") == 3 for line in text.splitlines())


def read_classes(
    labels: str | os.PathLike | None = None,
    colors: str | os.PathLike | None = None,
    labeldefs: str | os.PathLike | None = None,
) -> Classes | None:
    """The class table from ``labeldefs`` (labeldefs.txt), or from ``labels`` (labels.txt)
    with ``colors``: a colors.txt in the labels' order, a labeldefs.txt whose colours are
    matched by name, or None for :func:`default_colors`. None when no file is given.
    """
    if labeldefs is not None:
        if labels is not None:
            raise DltoolsError("give either --labeldefs or -l labels.txt, not both")
        return Classes(*read_labeldefs(labeldefs))
    if labels is None:
        return None
    names = read_labels(labels)
    if colors is None:
        return Classes(names, default_colors(len(names)))
    if _is_labeldefs(colors):
        defined, rgb = read_labeldefs(colors)
        missing = [name for name in names if name not in defined]
        if missing:
            raise DltoolsError(f"{colors} defines no colour for {', '.join(missing)}")
        return Classes(names, rgb[[defined.index(name) for name in names]])
    rgb = read_colors(colors)
    if len(rgb) != len(names):
        raise DltoolsError(
            f"{labels} lists {len(names)} classes but {colors} lists {len(rgb)} colours; "
            "give one colour per class, in the same order"
        )
    return Classes(names, rgb)


def write_labeldefs(path: str | os.PathLike, classes: Classes) -> None:
    """Write ``name, R, G, B`` lines (labeldefs.txt), atomically."""
    rows = zip(classes.names, classes.colors.tolist(), strict=True)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{n}, {r}, {g}, {b}\n" for n, (r, g, b) in rows), encoding="utf-8")


def write_labels(path: str | os.PathLike, names: Sequence[str]) -> None:
    """Write one class name per line, atomically."""
    bad = [n for n in names if not n or n != n.strip() or not n.isprintable()]
    if bad or not names or len(set(names)) != len(names):
        raise ValueError(f"class names must be unique, non-empty, one line each: {names!r}")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")


def write_colors(path: str | os.PathLike, colors_rgb_uint8: np.ndarray) -> None:
    """Write ``(K, 3)`` uint8 RGB colours as one ``#rrggbb`` line each, atomically."""
    colors = np.asarray(colors_rgb_uint8)
    if colors.ndim != 2 or colors.shape[1] != 3 or colors.dtype != np.uint8:
        raise ValueError(f"expected a (K, 3) uint8 array, got {colors.shape} {colors.dtype}")
    with atomic_path(path) as tmp:
        tmp.write_text("".join("#{:02x}{:02x}{:02x}\n".format(*rgb) for rgb in colors))
