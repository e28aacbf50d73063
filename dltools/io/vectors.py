"""Vector layers (GeoPackage, GeoJSON, anything OGR reads) through pyogrio and shapely.

- :func:`write_layer` streams batches of features into a new GeoPackage layer, atomically,
  so a layer of any size is written without holding it in memory.
- :func:`read_layer` reads a layer's geometries, attributes and CRS.
- :func:`write_window_ranking` writes ranked image windows as CSV and GeoJSON;
  :func:`write_image_ranking` ranks whole images by those windows.

Geometries are ``(N,)`` object arrays of shapely geometries; attributes are dicts of ``(N,)``
arrays, one per field, in field order.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.errors
import rasterio
import shapely
from rasterio.crs import CRS

from dltools.errors import DltoolsError
from dltools.io.outputs import atomic_path

Batch = tuple[np.ndarray, dict[str, np.ndarray]]  # (N,) geometries, field -> (N,) values


def write_layer(
    path: str | os.PathLike,
    batches: Iterable[Batch],
    crs: CRS | None,
    layer: str,
    geometry_type: str,
    schema: dict[str, np.dtype],
) -> int:
    """Write ``batches`` of features as layer ``layer`` of a new GeoPackage; return the count.

    ``schema`` gives every field's dtype (str fields: ``np.dtype(object)``), so that a layer
    without features still has its fields. ``crs`` None writes no CRS. The file appears
    only once every batch is written.
    """
    fields = list(schema)
    wkt = None if crs is None else crs.to_wkt()
    count = 0
    with atomic_path(path) as tmp:
        tmp.unlink()  # GDAL creates the GeoPackage itself
        for geometry, values in batches:
            if len(geometry) == 0:
                continue
            _write(tmp, geometry, [values[f] for f in fields], fields, layer, geometry_type, wkt)
            count += len(geometry)
        if count == 0:
            empty = [np.zeros(0, schema[f]) for f in fields]
            _write(tmp, np.zeros(0, object), empty, fields, layer, geometry_type, wkt)
    return count


def _write(
    path: Path, geometry, field_data, fields, layer, geometry_type, wkt, driver: str = "GPKG"
) -> None:
    """Write (or append to an existing ``path``) one batch of features with pyogrio."""
    with warnings.catch_warnings():
        # no CRS is asked for (callers warn in their own terms), and pyogrio warns each batch
        warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)
        pyogrio.raw.write(
            path,
            shapely.to_wkb(geometry),
            field_data,
            fields,
            layer=layer,
            driver=driver,
            geometry_type=geometry_type,
            crs=wkt,
            append=path.exists(),
        )


def read_layer(
    path: str | os.PathLike, layer: str | int | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray], CRS | None]:
    """``(geometry, fields, crs)`` of a vector layer (the first layer unless ``layer``).

    ``geometry`` is (N,) shapely geometries (None where a feature has none); ``fields``
    maps each attribute name to its (N,) values; ``crs`` is None if the layer has none.
    """
    if not Path(path).is_file():
        raise DltoolsError(f"{path}: file not found")
    try:
        meta, _, wkb, values = pyogrio.raw.read(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as err:
        raise DltoolsError(f"{path}: cannot read this vector file ({err})") from err
    crs = CRS.from_user_input(meta["crs"]) if meta.get("crs") else None
    fields = dict(zip(meta["fields"], values, strict=True))
    return shapely.from_wkb(wkb), fields, crs


def write_window_ranking(
    windows: Sequence,
    class_names: Sequence[str],
    profile: dict | None,
    csv_path: str | os.PathLike,
    geojson_path: str | os.PathLike,
) -> None:
    """Write ranked image windows as a CSV table and a GeoJSON layer of their outlines.

    Each window has ``row``, ``col``, ``height``, ``width`` (pixels), a score ``mean`` (the
    ``mean_uncertainty`` column) and ``doubt`` (0-based classes of ``class_names``), as
    :class:`dltools.engines.uncertainty.WindowScore` does; they are written in the given
    order, with their ``rank`` (1 = first). Outlines are in the CRS of the georeferenced image
    of ``profile`` (its ``crs`` and ``transform``), else in pixel coordinates (x right, y down).
    """
    fields = ["rank", "row", "col", "height", "width", "mean_uncertainty", "doubt"]
    rows = [
        {
            "rank": i + 1,
            "row": w.row,
            "col": w.col,
            "height": w.height,
            "width": w.width,
            "mean_uncertainty": round(w.mean, 4),
            "doubt": " / ".join(class_names[k] for k in w.doubt),
        }
        for i, w in enumerate(windows)
    ]
    with atomic_path(csv_path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    transform = profile["transform"] if profile is not None else rasterio.Affine.identity()
    outlines = []
    for w in rows:
        x0, y0, x1, y1 = w["col"], w["row"], w["col"] + w["width"], w["row"] + w["height"]
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        outlines.append(shapely.Polygon([transform @ xy for xy in corners]))
    values = [
        np.array([row[k] for row in rows], dtype=object if k == "doubt" else None) for k in fields
    ]
    crs = profile.get("crs") if profile is not None else None
    wkt = None if crs is None else CRS.from_user_input(crs).to_wkt()
    with atomic_path(geojson_path) as tmp:
        tmp.unlink()
        layer = Path(geojson_path).stem  # not the temporary file's name
        outlines = np.array(outlines, dtype=object)
        _write(tmp, outlines, values, fields, layer, "Polygon", wkt, driver="GeoJSON")


def write_image_ranking(
    next_csvs: Mapping[str, str | os.PathLike], path: str | os.PathLike
) -> list[dict]:
    """Rank images by the windows of their ``<name>_next.csv`` (``{image: csv}``): most
    uncertain first by the mean of their windows' ``mean_uncertainty``. Writes ``path`` (CSV:
    rank, image, mean_uncertainty, top_window_uncertainty, next) and returns its rows."""
    rows = []
    for image, csv_path in next_csvs.items():
        with open(csv_path, newline="") as f:
            scores = [float(r["mean_uncertainty"]) for r in csv.DictReader(f)]
        if scores:
            mean, top = round(float(np.mean(scores)), 4), max(scores)
            rows.append({"image": image, "mean_uncertainty": mean, "top": top, "csv": csv_path})
    rows.sort(key=lambda r: -r["mean_uncertainty"])
    fields = ["rank", "image", "mean_uncertainty", "top_window_uncertainty", "next"]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for rank, r in enumerate(rows, 1):
            name = Path(r["csv"]).name
            writer.writerow([rank, r["image"], r["mean_uncertainty"], r["top"], name])
    return rows
