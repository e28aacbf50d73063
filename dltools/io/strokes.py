"""Reading class strokes from files, for labelling without the painting window.

Every reader returns a *stroke raster* on the image's grid: (H, W) uint8 (uint16 above 254
classes), 0 = no stroke, k = class k (1-based, ``class_names[k - 1]``). Strokes come from

- a label image (PNG/TIFF) with the same values, such as a saved ``<name>_doodles.png``,
  resized by nearest neighbour when it has the image's aspect ratio but another size;
- a ``_mres.mat`` result of the original dl_tools (its ``sparse`` strokes, classes matched by
  name);
- GeoJSON files or GeoPackage layers (strokes drawn in QGIS) of lines, polygons or points
  carrying a class name, drawn onto a georeferenced image.

:func:`write_stroke_layer` writes strokes the other way, as a GeoPackage layer of polygons
(one per stroke region) that QGIS can edit and :func:`read_strokes` replays pixel for pixel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio.features
import rasterio.warp
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.windows import Window

from dltools.errors import DltoolsError
from dltools.io.geo import read_raster
from dltools.io.images import image_shape as image_size
from dltools.io.images import is_image_file, read_image
from dltools.io.results import read_result
from dltools.io.vectors import read_layer, write_layer

ASPECT_TOLERANCE = 0.01  # relative difference of height/width accepted when resizing strokes
GEOJSON_SUFFIXES = (".geojson", ".json")
GEOPACKAGE_SUFFIX = ".gpkg"
AREA_TYPES = ("Polygon", "MultiPolygon")  # filled by pixel centres; the rest burns every touched


def stroke_dtype(n_classes: int) -> np.dtype:
    """The dtype of a stroke raster holding classes 1..``n_classes``: uint8, or uint16 above 254."""
    return np.dtype(np.uint8 if n_classes <= 254 else np.uint16)


def read_strokes(
    path: str | os.PathLike,
    image_shape: tuple[int, int],
    class_names: Sequence[str],
    *,
    georef: dict | None = None,
    class_field: str = "class",
) -> np.ndarray:
    """Read strokes for an image of ``image_shape`` (H, W) from ``path``.

    ``path`` is a label image (.png/.tif/...), a ``_mres.mat``, a GeoJSON file or a GeoPackage
    (its first layer). Vector strokes need ``georef``, the image's rasterio profile (``crs``
    and ``transform``), and name each feature's class in the property ``class_field``.
    Returns (H, W) uint8 (uint16 above 254 classes): 0 = no stroke, k = ``class_names[k - 1]``.
    """
    path = Path(path)
    if path.suffix.lower() in (*GEOJSON_SUFFIXES, GEOPACKAGE_SUFFIX):
        return _rasterize_vectors(path, image_shape, class_names, georef, class_field)
    if path.suffix.lower() == ".mat":
        result = read_result(path, labels=class_names)
        if result.sparse is None:
            raise DltoolsError(
                f"{path} holds no strokes (no 'sparse' array): only files made with the "
                "painting tool can be replayed"
            )
        strokes = result.sparse
    elif is_image_file(path):
        strokes = _label_values(read_image(path), path, class_names)
    else:
        raise DltoolsError(
            f"{path}: cannot read strokes from a {path.suffix!r} file; give a label image "
            "(.png/.tif), a _mres.mat, a .geojson or a .gpkg"
        )
    return _fit_to_shape(strokes.astype(stroke_dtype(len(class_names))), image_shape, path)


@dataclass(frozen=True)
class StrokeSource:
    """Strokes of an image too large to hold whole, read window by window (see
    :func:`open_strokes`): a stroke raster of the image's size, read through GDAL windows,
    or vector strokes (``areas`` and ``lines``: (GeoJSON geometry, class) pairs in the
    image's CRS, or in the pixels of a smaller stroke raster) burnt onto each window with
    ``transform`` (the image's pixels to those coordinates)."""

    path: Path
    class_names: tuple[str, ...]
    transform: Affine | None = None
    areas: tuple = ()
    lines: tuple = ()

    def read(self, window: Window) -> np.ndarray:
        """(h, w) stroke raster of ``window`` (uint8, uint16 above 254 classes)."""
        dtype = stroke_dtype(len(self.class_names))
        if self.transform is None:
            pixels = read_raster(self.path, window)
            return _label_values(pixels, self.path, self.class_names).astype(dtype)
        strokes = np.zeros((window.height, window.width), dtype)
        shifted = self.transform @ Affine.translation(window.col_off, window.row_off)
        _burn(self.areas, self.lines, strokes, shifted)
        return strokes

    def none_found(self) -> DltoolsError:
        """The error for strokes that fall nowhere on the image."""
        if self.transform is None or is_image_file(self.path):
            return DltoolsError(f"{self.path} holds no strokes: only zeros (0 = no stroke)")
        return _outside_error(self.path, len(self.areas) + len(self.lines))


def open_strokes(
    path: str | os.PathLike,
    image_shape: tuple[int, int],
    class_names: Sequence[str],
    *,
    georef: dict | None = None,
    class_field: str = "class",
) -> StrokeSource:
    """Strokes of ``path`` for an image of ``image_shape`` (H, W), to be read window by window.

    As :func:`read_strokes`, except that a label image of the image's size is read window
    by window (its values checked in each), a smaller one (an overview, such as the
    painter's, with the image's aspect ratio) is read whole and burnt onto each window as
    polygons, a larger one and a ``_mres.mat``, which holds its strokes whole, are refused.
    """
    path = Path(path)
    names = tuple(class_names)
    suffix = path.suffix.lower()
    if suffix in (*GEOJSON_SUFFIXES, GEOPACKAGE_SUFFIX):
        areas, lines = _vector_shapes(path, names, georef, class_field)
        return StrokeSource(path, names, georef["transform"], tuple(areas), tuple(lines))
    if suffix == ".mat" or not is_image_file(path):
        raise DltoolsError(
            f"{path}: an image this large is labelled in windows, which read strokes from a "
            "label image of the image's size (.png/.tif), a .geojson or a .gpkg"
        )
    height, width, _ = image_size(path)
    if (height, width) == tuple(image_shape):
        return StrokeSource(path, names)
    if height * width > image_shape[0] * image_shape[1]:
        raise DltoolsError(
            f"{path} is {width}x{height} pixels but the image is {image_shape[1]}x"
            f"{image_shape[0]}: strokes read in windows must have the image's size or be "
            "smaller (an overview)"
        )
    return _overview_source(path, image_shape, names)


def _overview_source(
    path: Path, image_shape: tuple[int, int], class_names: tuple[str, ...]
) -> StrokeSource:
    """The strokes of a label image smaller than the (H, W) image, with its aspect ratio (an
    overview, such as the painter's on a large image), as polygons burnt onto each window.

    An overview of ``ceil(H / c) x ceil(W / c)`` pixels for a whole ``c`` (the image shrunk
    by cells of c x c pixels, :func:`dltools.engines.crf.shrink_strokes`) marks each cell;
    any other size is stretched over the image, as :func:`read_strokes` resizes it.
    """
    small = _label_values(read_image(path), path, class_names)
    _check_aspect(small.shape, image_shape, path)
    (height, width), (rows, cols) = image_shape, small.shape
    cell = round(height / rows)
    if (-(-height // cell), -(-width // cell)) == (rows, cols):
        to_overview = Affine.scale(1 / cell)
    else:
        to_overview = Affine.scale(cols / width, rows / height)
    shapes = rasterio.features.shapes(small.astype(np.int32), mask=small > 0)
    areas = tuple((geometry, int(value)) for geometry, value in shapes)
    return StrokeSource(path, class_names, to_overview, areas)


def _label_values(pixels: np.ndarray, path: Path, class_names: Sequence[str]) -> np.ndarray:
    """(H, W, C) pixels of a label image -> (H, W) int64 class values in 0..K; C > 1 only if
    all bands are equal."""
    if pixels.shape[2] > 1 and not (pixels == pixels[..., :1]).all():
        raise DltoolsError(
            f"{path} has {pixels.shape[2]} different bands; a stroke image has one band of "
            "class numbers (0 = no stroke, k = class k), not colours"
        )
    values = pixels[..., 0]
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or not np.array_equal(values, np.round(values)):
            raise DltoolsError(f"{path} holds fractional or NaN values: expected class numbers")
    if values.size and values.min() < 0:
        raise DltoolsError(f"{path} holds negative values: expected class numbers 0, 1, 2, ...")
    n = len(class_names)
    if values.size and values.max() > n:
        found = sorted(int(v) for v in np.unique(values[values > n]))
        raise DltoolsError(
            f"{path} holds class value(s) {found} but only {n} classes are given "
            f"({', '.join(class_names)}): values must lie in 0..{n} (0 = no stroke)"
        )
    return values.astype(np.int64)


def _fit_to_shape(strokes: np.ndarray, image_shape: tuple[int, int], source) -> np.ndarray:
    """Resize a (h, w) stroke raster to ``image_shape`` (H, W) by nearest neighbour (see
    :func:`_check_aspect`)."""
    height, width = image_shape
    if strokes.shape == (height, width):
        return strokes
    _check_aspect(strokes.shape, image_shape, source)
    return cv2.resize(strokes, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def _check_aspect(shape: tuple[int, int], image_shape: tuple[int, int], source) -> None:
    """Strokes of (h, w) pixels may stand for an (H, W) image only if the aspect ratios agree
    within 1 %: anything else means the strokes belong to another image."""
    (h, w), (height, width) = shape, image_shape
    if abs((h / w) / (height / width) - 1) > ASPECT_TOLERANCE:
        raise DltoolsError(
            f"{source} is {w}x{h} pixels but the image is {width}x{height}: the aspect ratios "
            "differ, so these strokes were not drawn on this image"
        )


def _geojson_features(path: Path) -> tuple[list[dict], CRS]:
    """The features of a GeoJSON file and their CRS (EPSG:4326 lon/lat unless a legacy
    ``crs`` member names another)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DltoolsError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DltoolsError(f"{path}: not a readable GeoJSON file ({err})") from err
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in ("FeatureCollection", "Feature"):
        raise DltoolsError(
            f"{path}: expected a GeoJSON FeatureCollection or Feature, found {kind!r}"
        )
    features = data.get("features", []) if kind == "FeatureCollection" else [data]
    name = (data.get("crs") or {}).get("properties", {}).get("name", "OGC:CRS84")
    try:
        crs = CRS.from_user_input(name)
    except CRSError as err:
        raise DltoolsError(f"{path}: unknown coordinate reference system {name!r}") from err
    return features, crs


def _geopackage_features(path: Path) -> tuple[list[dict], CRS]:
    """The features of a GeoPackage's first layer as GeoJSON-like dicts, and their CRS."""
    geometry, fields, crs = read_layer(path)
    if crs is None:
        raise DltoolsError(f"{path}: the layer has no coordinate reference system")
    features = [
        {
            "properties": {name: values[i] for name, values in fields.items()},
            "geometry": None if shape is None else shapely.geometry.mapping(shape),
        }
        for i, shape in enumerate(geometry)
    ]
    return features, crs


def _rasterize_vectors(
    path: Path,
    image_shape: tuple[int, int],
    class_names: Sequence[str],
    georef: dict | None,
    class_field: str,
) -> np.ndarray:
    """Burn vector strokes onto the image grid (see :func:`_burn`)."""
    areas, lines = _vector_shapes(path, class_names, georef, class_field)
    strokes = np.zeros(image_shape, stroke_dtype(len(class_names)))
    _burn(areas, lines, strokes, georef["transform"])
    if (areas or lines) and not strokes.any():
        raise _outside_error(path, len(areas) + len(lines), georef["crs"])
    return strokes


def _burn(areas: Sequence, lines: Sequence, strokes: np.ndarray, transform: Affine) -> None:
    """Burn (geometry, class) pairs into ``strokes`` (h, w), whose grid is ``transform``:
    lines and points mark every pixel they touch, polygons the pixels whose centres they
    contain; later shapes are drawn over earlier ones (all lines over all polygons)."""
    for shapes, all_touched in ((areas, False), (lines, True)):
        if shapes:
            rasterio.features.rasterize(
                shapes, out=strokes, transform=transform, all_touched=all_touched
            )


def _outside_error(path: Path, count: int, crs: CRS | None = None) -> DltoolsError:
    where = f"in its CRS, {crs}" if crs is not None else "in its CRS"
    return DltoolsError(
        f"{path}: none of its {count} stroke(s) falls on the image (they lie outside its "
        f"bounds once placed {where}); are they drawn on this image, and is the GeoJSON's CRS "
        "right (EPSG:4326 unless it names one)?"
    )


def _vector_shapes(
    path: Path, class_names: Sequence[str], georef: dict | None, class_field: str
) -> tuple[list, list]:
    """The (geometry in the image's CRS, class number) pairs of the polygons (``areas``) and
    of the lines and points (``lines``) of a vector stroke file, in file order."""
    if georef is None or georef.get("crs") is None or georef.get("transform") is None:
        raise DltoolsError(
            f"{path}: vector strokes need a georeferenced image (a GeoTIFF with a CRS and a "
            "transform) to be placed on; give a label image or a _mres.mat otherwise"
        )
    if path.suffix.lower() == GEOPACKAGE_SUFFIX:
        features, crs = _geopackage_features(path)
    else:
        features, crs = _geojson_features(path)
    numbers = {name: k for k, name in enumerate(class_names, 1)}
    areas, lines, unknown = [], [], set()
    for index, feature in enumerate(features):
        name = (feature.get("properties") or {}).get(class_field)
        if name is None:
            raise DltoolsError(f"{path}: feature {index} has no {class_field!r} property")
        if str(name) not in numbers:
            unknown.add(str(name))
            continue
        geometry = feature.get("geometry")
        if geometry is None:  # an unlocated feature holds no stroke
            continue
        shape = rasterio.warp.transform_geom(crs, georef["crs"], geometry)
        (areas if geometry["type"] in AREA_TYPES else lines).append((shape, numbers[str(name)]))
    if unknown:
        raise DltoolsError(
            f"{path}: class name(s) {', '.join(sorted(unknown))} (property {class_field!r}) are "
            f"not among the labels {', '.join(class_names)}"
        )
    return areas, lines


def write_stroke_layer(
    path: str | os.PathLike,
    strokes: np.ndarray,
    class_names: Sequence[str],
    georef: dict,
    class_field: str = "class",
) -> int:
    """Write (H, W) strokes (0 = none, k = ``class_names[k - 1]``) of a georeferenced image
    (``georef``: its profile) as a new GeoPackage layer ``strokes``: one polygon per
    4-connected stroke region with its class name in ``class_field``, in the image's CRS.
    Returns the polygon count; :func:`read_strokes` gives the same strokes back.
    """
    _require_crs(path, georef)
    shapes = list(
        rasterio.features.shapes(strokes, mask=strokes > 0, transform=georef["transform"])
    )
    geometry = np.array([shapely.geometry.shape(shape) for shape, _ in shapes], dtype=object)
    values = np.array([int(value) for _, value in shapes], dtype=np.int64)
    return write_stroke_polygons(path, [(geometry, values)], class_names, georef, class_field)


def write_stroke_polygons(
    path: str | os.PathLike,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    georef: dict,
    class_field: str = "class",
) -> int:
    """Write stroke polygons as :func:`write_stroke_layer` does, from ``batches`` of
    ((N,) object shapely polygons in the image's CRS, (N,) int class values k); e.g. those
    of strokes polygonised window by window. Returns the polygon count."""
    _require_crs(path, georef)
    names = np.array(list(class_names), dtype=object)
    layer = ((geometry, {class_field: names[values - 1]}) for geometry, values in batches)
    schema = {class_field: np.dtype(object)}
    return write_layer(path, layer, georef["crs"], "strokes", "Polygon", schema)


def _require_crs(path: str | os.PathLike, georef: dict) -> None:
    if georef.get("crs") is None:
        raise DltoolsError(
            f"{path}: strokes are written as a vector layer only for georeferenced images"
        )
