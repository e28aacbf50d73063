"""Polygonize: a class raster -> a GeoPackage layer of polygons with attributes.

The raster (one band, value ``k`` = class ``k``, 0 or nodata = none) is read window by
window and polygonised by :mod:`dltools.engines.polygons` (sieving first, polygons merged
exactly across window edges, holes kept), so rasters larger than memory work. Each polygon
gets the attributes

- ``class``: the class name (from ``labels.txt`` or the raster's class-name tag),
- ``class_id``: the label value ``k`` (line ``k`` of labels.txt),
- ``area_m2``: the area of its pixels in m² (``area_px``, in pixels, without a CRS),
- ``mean_confidence``: the mean of a probability raster over its pixels (only with one),
- ``source``: the raster's file name,

in the raster's CRS. The command line calls :func:`polygonize_raster` for ``dltools
polygonize`` and for ``--vector`` of the steps that write label rasters.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from dltools.engines.polygons import WINDOW, Polygons, polygonize, to_map
from dltools.errors import DltoolsError, DltoolsWarning
from dltools.io.cog import read_raster_classes
from dltools.io.geo import Window, pixel_areas, read_nodata_mask, read_profile, read_raster
from dltools.io.vectors import Batch, write_layer

INTEGER_KINDS = ("u", "i")


@dataclass(frozen=True)
class PolygonizeParams:
    """``min_area``: regions smaller than this (m², or pixels without a CRS) are sieved into
    their largest neighbour first; ``simplify``: Douglas-Peucker tolerance in CRS units
    (pixels without a CRS), 0 = exact pixel edges; ``window``: side of the windows read."""

    min_area: float = 0.0
    simplify: float = 0.0
    window: int = WINDOW

    def __post_init__(self) -> None:
        if self.min_area < 0 or self.simplify < 0:
            raise DltoolsError("--min-area and --simplify must not be negative")
        if self.window < 16:
            raise DltoolsError(f"the window must be at least 16 pixels, got {self.window}")


@dataclass
class PolygonizeSummary:
    """What :func:`polygonize_raster` wrote: polygon count per class and the area unit."""

    counts: dict[str, int]
    area_field: str


def vector_path(raster: str | os.PathLike) -> Path:
    """The GeoPackage written beside a label raster by ``--vector``: ``<name>.gpkg``."""
    return Path(raster).with_suffix(".gpkg")


def _class_names(raster: Path, names: Sequence[str] | None) -> list[str]:
    if names is not None:
        return list(names)
    stored = read_raster_classes(raster)
    if stored is None:
        raise DltoolsError(
            f"{raster} names no classes in its metadata: pass -l labels.txt "
            "(value k = line k, 0 = none)"
        )
    return stored.names


def _label_reader(raster: Path, profile: dict, count: int):
    """window -> (h, w) labels of band 1, nodata as 0; values beyond ``count`` are an error."""
    masked = profile.get("nodata") is not None

    def read(window: Window) -> np.ndarray:
        values = read_raster(raster, window)[..., 0]
        if masked:
            values = np.where(read_nodata_mask(raster, window), 0, values)
        if values.size and (values.min() < 0 or values.max() > count):
            bad = values.max() if values.max() > count else values.min()
            raise DltoolsError(
                f"{raster}: label value {bad} has no class name: {count} classes are named "
                f"(values 1..{count}, 0 = none); pass the right -l labels.txt"
            )
        return values

    return read


def _confidence_reader(path: Path, profile: dict):
    other = read_profile(path)
    if (other["height"], other["width"]) != (profile["height"], profile["width"]):
        raise DltoolsError(
            f"{path} is {other['width']} x {other['height']} pixels but the label raster is "
            f"{profile['width']} x {profile['height']}: not its probability raster"
        )
    return lambda window: read_raster(path, window)[..., 0].astype(np.float64)


def polygonize_raster(
    raster: str | os.PathLike,
    out: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    confidence: str | os.PathLike | None = None,
    params: PolygonizeParams = PolygonizeParams(),
    layer: str | None = None,
) -> PolygonizeSummary:
    """Polygonise the class raster ``raster`` into a new GeoPackage ``out`` (layer ``layer``,
    default: the raster's name); see the module docstring. ``class_names[k - 1]`` names
    value ``k`` (default: the raster's class-name tag); ``confidence`` is a probability
    raster on the same grid. A raster without CRS gets areas in pixels, with a warning.
    """
    raster = Path(raster)
    profile = read_profile(raster)
    if profile["count"] != 1 or np.dtype(profile["dtype"]).kind not in INTEGER_KINDS:
        raise DltoolsError(
            f"{raster}: a class raster has one band of whole numbers; this one has "
            f"{profile['count']} band(s) of {profile['dtype']}"
        )
    names = _class_names(raster, class_names)
    row_areas = pixel_areas(profile)
    if row_areas is None:
        warnings.warn(
            f"{raster} has no CRS: polygons are in pixel coordinates and areas in pixels "
            "(field area_px); --min-area and --simplify are in pixels",
            DltoolsWarning,
            stacklevel=2,
        )
    area_field = "area_px" if row_areas is None else "area_m2"
    typical = 1.0 if row_areas is None else float(np.median(row_areas))
    min_pixels = math.ceil(params.min_area / typical) if params.min_area > 0 else 0
    read_confidence = None if confidence is None else _confidence_reader(Path(confidence), profile)
    batches = polygonize(
        _label_reader(raster, profile, len(names)),
        (profile["height"], profile["width"]),
        params.window,
        min_pixels,
        read_confidence,
        row_areas,
    )
    counts = dict.fromkeys(names, 0)
    schema = {
        "class": np.dtype(object),
        "class_id": np.dtype(np.int32),
        area_field: np.dtype(float),
    }
    if confidence is not None:
        schema["mean_confidence"] = np.dtype(float)
    schema["source"] = np.dtype(object)

    def features() -> Iterator[Batch]:
        for batch in batches:
            yield _features(batch, names, profile, params.simplify, schema, raster.name)
            for value, n in zip(*np.unique(batch.value, return_counts=True), strict=True):
                counts[names[value - 1]] += int(n)

    write_layer(out, features(), profile.get("crs"), layer or raster.stem, "Polygon", schema)
    return PolygonizeSummary(counts, area_field)


def _features(
    batch: Polygons,
    names: list[str],
    profile: dict,
    simplify: float,
    schema: dict[str, np.dtype],
    source: str,
) -> Batch:
    """Map coordinates, simplification and attributes of a batch of polygons."""
    geometry = batch.geometry
    if profile.get("crs") is not None:
        geometry = to_map(geometry, profile["transform"])
    if simplify > 0:
        geometry = shapely.simplify(geometry, simplify, preserve_topology=True)
    values = {
        "class": np.array([names[v - 1] for v in batch.value], object),
        "class_id": batch.value.astype(np.int32),
        "mean_confidence": batch.confidence,
        "source": np.full(len(batch), source, object),
    }
    area_field = next(name for name in schema if name.startswith("area_"))
    values[area_field] = batch.area
    return geometry, {name: values[name] for name in schema}
