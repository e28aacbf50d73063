"""Label result files of the original dl_tools: ``<name>_mres.mat`` / ``<name>_ares.mat``.

A result is a MATLAB 5 file (scipy.io.loadmat) with the keys

- ``class``: ``(H, W)`` integer, 0-based index into ``labels`` (always present); dltools
  writes :data:`NODATA` (-1) where a GeoTIFF has no data;
- ``labels``: the class names, stored as a space-padded char matrix or a cell array;
- ``sparse``: ``(H, W)`` integer annotation strokes, 0 = no stroke, ``k`` = class ``k - 1``;
- ``preds``: ``(h, w, K)`` float CRF posteriors, possibly at a smaller working scale; channel
  ``k`` is class ``k``, and files written by the original tool carry one extra last channel.

Files from the wild store these as uint8, int32 or int64 and list the labels in different
orders, so classes are always matched by name (:func:`remap_classes`), never by index.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from dltools.errors import DltoolsError
from dltools.io.outputs import atomic_path

NODATA = -1  # ``class`` value of pixels where the image has no data


@dataclass
class LabelResult:
    """One labelled image.

    ``class_map``: ``(H, W)`` integer class indices into ``labels``; ``sparse``: ``(H, W)``
    integer strokes (0 = none, ``k`` = class ``k - 1``) or None; ``preds``: ``(h, w, K)``
    float posteriors (``K >= len(labels)``) or None.
    """

    class_map: np.ndarray
    labels: list[str]
    sparse: np.ndarray | None = None
    preds: np.ndarray | None = None


def result_name(image_path: str | os.PathLike, kind: str = "mres", suffix: str = "") -> str:
    """File name of an image's result: ``<stem>_<kind><suffix>.mat``, e.g. ``a_mres.mat``.

    ``kind`` is ``"mres"`` (manual labels) or ``"ares"`` (automatic); ``suffix`` is inserted
    before ``.mat`` (``"_crf"`` gives ``a_ares_crf.mat``).
    """
    return f"{Path(image_path).stem}_{kind}{suffix}.mat"


def _strings(value, path: str | os.PathLike) -> list[str]:
    """Strings from a loadmat value: a char matrix (``U`` array, any shape) or nested cells."""
    if isinstance(value, str):
        return [value.strip()]
    array = np.asarray(value)
    if array.dtype.kind == "U":
        return [str(s).strip() for s in array.ravel()]
    if array.dtype == object:
        return [s for item in array.ravel() for s in _strings(item, path)]
    raise DltoolsError(f"{path}: 'labels' holds {array.dtype} values instead of class names")


def _integer_map(array: np.ndarray, key: str, path: str | os.PathLike) -> np.ndarray:
    """``array`` as an ``(H, W)`` integer array; whole-number floats are converted."""
    if array.ndim != 2:
        raise DltoolsError(f"{path}: {key!r} has shape {array.shape}, expected (height, width)")
    if array.dtype.kind in "iu":
        return array
    if array.dtype.kind == "f" and np.array_equal(array, np.round(array)):
        return array.astype(np.int32)
    raise DltoolsError(f"{path}: {key!r} must hold whole numbers, found {array.dtype} values")


def _check(result: LabelResult, source: str | os.PathLike) -> None:
    """Raise DltoolsError unless the parts of ``result`` agree with each other."""
    count = len(result.labels)
    if not all(result.labels) or len(set(result.labels)) != count:
        raise DltoolsError(f"{source}: class names must be unique and non-empty: {result.labels}")
    maps = [("class", result.class_map, NODATA, count - 1)]
    if result.sparse is not None:
        maps.append(("sparse", result.sparse, 0, count))
        if result.sparse.shape != result.class_map.shape:
            raise DltoolsError(
                f"{source}: 'sparse' is {result.sparse.shape} but 'class' is "
                f"{result.class_map.shape}"
            )
    for key, values, lowest, highest in maps:
        if values.size and (values.min() < lowest or values.max() > highest):
            raise DltoolsError(
                f"{source}: {key!r} holds values from {values.min()} to {values.max()}, but with "
                f"{count} classes ({', '.join(result.labels)}) they must lie in 0..{highest}"
                f"{' (or -1 for nodata)' if lowest < 0 else ''}; "
                "are these the right labels for this file?"
            )
    if result.preds is not None and (result.preds.ndim != 3 or result.preds.shape[2] < count):
        raise DltoolsError(
            f"{source}: 'preds' has shape {result.preds.shape}; expected (h, w, K) with "
            f"K >= {count} classes"
        )


def _load(path: str | os.PathLike) -> dict:
    if not Path(path).is_file():
        raise DltoolsError(f"{path}: file not found")
    try:
        return scipy.io.loadmat(path)
    except NotImplementedError:
        raise DltoolsError(
            f"{path}: MATLAB v7.3 files are not supported; save it with save(..., '-v7')"
        ) from None
    except (ValueError, TypeError, OSError) as err:
        raise DltoolsError(f"{path}: not a readable MATLAB .mat file ({err})") from err


def read_result(path: str | os.PathLike, labels: Sequence[str] | None = None) -> LabelResult:
    """Read a ``_mres.mat`` / ``_ares.mat`` file.

    Label names are stripped of their padding. With ``labels`` the result is returned in that
    class order, matched by name (a file that stores no names is taken to use ``labels`` as
    they are); without it, in the file's own order, and a file without names is an error.
    """
    mat = _load(path)
    if "class" not in mat:
        raise DltoolsError(f"{path}: no 'class' array; is this a dl_tools _mres/_ares file?")
    if "labels" in mat:
        file_labels = _strings(mat["labels"], path)
    elif labels is not None:
        file_labels = list(labels)
    else:
        raise DltoolsError(
            f"{path} stores no class names: give the labels file that was used to make it"
        )
    sparse = _integer_map(mat["sparse"], "sparse", path) if "sparse" in mat else None
    result = LabelResult(
        class_map=_integer_map(mat["class"], "class", path),
        labels=file_labels,
        sparse=sparse,
        preds=mat.get("preds"),
    )
    _check(result, path)
    return result if labels is None else reorder_result(result, labels)


def remap_classes(
    class_map: np.ndarray, from_labels: Sequence[str], to_labels: Sequence[str]
) -> np.ndarray:
    """Re-index ``class_map`` (integer indices into ``from_labels``) into ``to_labels``, by name.

    Returns an integer array of the same shape; :data:`NODATA` stays :data:`NODATA`. Every
    name of ``from_labels`` must occur in ``to_labels``.
    """
    lut = _lookup(from_labels, to_labels)
    if class_map.size and (class_map.min() < NODATA or class_map.max() >= len(lut)):
        raise DltoolsError(
            f"class values from {class_map.min()} to {class_map.max()} do not index the "
            f"{len(lut)} classes {', '.join(from_labels)}"
        )
    if class_map.size and class_map.min() == NODATA:
        remapped = lut.astype(np.int32)[np.maximum(class_map, 0)]
        return np.where(class_map == NODATA, NODATA, remapped).astype(np.int16)
    return lut[class_map]


def _lookup(from_labels: Sequence[str], to_labels: Sequence[str]) -> np.ndarray:
    """``lut[i]`` = position of ``from_labels[i]`` in ``to_labels``."""
    missing = [name for name in from_labels if name not in to_labels]
    if missing:
        raise DltoolsError(
            f"class(es) {', '.join(missing)} are not among the labels "
            f"{', '.join(to_labels)}; classes are matched by name, so the label lists must agree"
        )
    dtype = np.min_scalar_type(max(len(to_labels), 1))
    return np.array([list(to_labels).index(name) for name in from_labels], dtype=dtype)


def reorder_result(result: LabelResult, labels: Sequence[str]) -> LabelResult:
    """``result`` expressed in the class order of ``labels`` (a superset of its names).

    ``preds`` channels of classes the result lacks are zero; extra trailing channels stay last.
    """
    labels = list(labels)
    if labels == result.labels:
        return result
    lut = _lookup(result.labels, labels)
    sparse = None
    if result.sparse is not None:
        sparse = np.concatenate([[0], lut + 1]).astype(lut.dtype)[result.sparse]
    preds = None
    if result.preds is not None:
        count = len(result.labels)
        extra = result.preds[..., count:]
        preds = np.zeros((*extra.shape[:2], len(labels) + extra.shape[2]), result.preds.dtype)
        preds[..., lut] = result.preds[..., :count]
        preds[..., len(labels) :] = extra
    class_map = remap_classes(result.class_map, result.labels, labels)
    return LabelResult(class_map, labels, sparse, preds)


def _stored_int(values: np.ndarray, highest: int) -> np.ndarray:
    """uint8 when ``highest`` fits, as in the original files; int16 with nodata; else int32."""
    if values.size and values.min() < 0:
        return values.astype(np.int16 if highest <= 32767 else np.int32)
    return values.astype(np.uint8 if highest <= 255 else np.int32)


def write_result(path: str | os.PathLike, result: LabelResult) -> None:
    """Write ``result`` as a compressed MATLAB 5 file that scipy.io.loadmat reads, atomically.

    ``class`` and ``sparse`` are stored as uint8 (int16 when ``class`` holds :data:`NODATA`,
    int32 beyond 255 classes), ``preds`` as
    float32 (MATLAB single: MAT files have no float16) and ``labels`` as a char matrix.
    """
    _check(result, path)
    count = len(result.labels)
    contents = {"class": _stored_int(result.class_map, count - 1), "labels": result.labels}
    if result.sparse is not None:
        contents["sparse"] = _stored_int(result.sparse, count)
    if result.preds is not None:
        contents["preds"] = result.preds.astype(np.float32)
    with atomic_path(path) as tmp:
        scipy.io.savemat(tmp, contents, do_compression=True)
