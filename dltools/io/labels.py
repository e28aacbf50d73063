"""Class lists: ``labels.txt``, ``colors.txt`` and ``labeldefs.txt``.

- labels.txt: one class name per line.
- colors.txt: one matplotlib colour per line (``r``, ``gray``, ``#D2691E``, ...), in the order
  of labels.txt.
- labeldefs.txt: ``name, R, G, B`` per line (0-255).

Reading tolerates CRLF line ends, a byte-order mark, spaces around entries, blank lines and a
missing final newline. Colours are ``(K, 3)`` uint8 RGB arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
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


def read_classes(
    labels_path: str | os.PathLike, colors_path: str | os.PathLike
) -> tuple[list[str], np.ndarray]:
    """Names from ``labels_path`` and their ``(K, 3)`` uint8 colours from ``colors_path``."""
    names = read_labels(labels_path)
    colors = read_colors(colors_path)
    if len(names) != len(colors):
        raise DltoolsError(
            f"{labels_path} lists {len(names)} classes but {colors_path} lists {len(colors)} "
            "colours; give one colour per class, in the same order"
        )
    return names, colors


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
