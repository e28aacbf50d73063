"""Checks shared by the tests of every step that writes GIS rasters: COG layout and style."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import rasterio
import rasterio.features
from rio_cogeo.cogeo import cog_validate

from dltools.io.cog import read_raster_classes
from dltools.io.labels import Classes
from dltools.io.vectors import read_layer


def assert_cog(path: Path, overviews: bool = True) -> None:
    """``path`` is a valid COG (rio-cogeo), tiled, compressed, with overviews when big enough."""
    valid, errors, _ = cog_validate(str(path), strict=True)
    assert valid, f"{path}: not a valid COG: {errors}"
    with rasterio.open(path) as src:
        assert src.profile["tiled"] and src.compression is not None
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.nodata is not None
        if overviews:
            assert src.overviews(1), f"{path}: no internal overviews"


def qml_entries(path: Path) -> list[tuple[int, str, str]]:
    """``(value, #rrggbb, label)`` of the paletted renderer of a ``.qml`` file."""
    root = ET.parse(path).getroot()
    renderer = root.find("pipe/rasterrenderer")
    assert renderer is not None and renderer.get("type") == "paletted"
    return [
        (int(e.get("value")), e.get("color"), e.get("label")) for e in renderer.iter("paletteEntry")
    ]


def assert_styled_classes(path: Path, classes: Classes) -> None:
    """The colour table, class-name tags and ``.qml`` of a class raster match ``classes``."""
    stored = read_raster_classes(path)
    assert stored is not None and stored.names == list(classes.names)
    np.testing.assert_array_equal(stored.colors, classes.colors)
    with rasterio.open(path) as src:
        table = src.colormap(1)
    assert table[0][3] == 0  # nodata is transparent
    expected = [
        (k, "#{:02x}{:02x}{:02x}".format(*rgb), name)
        for k, (name, rgb) in enumerate(zip(classes.names, classes.colors.tolist(), strict=True), 1)
    ]
    assert qml_entries(path.with_suffix(".qml")) == expected


def assert_continuous_style(path: Path) -> None:
    """A probability raster's ``.qml`` is a continuous ramp over 0..1."""
    renderer = ET.parse(path.with_suffix(".qml")).getroot().find("pipe/rasterrenderer")
    assert renderer is not None and renderer.get("type") == "singlebandpseudocolor"
    values = [float(item.get("value")) for item in renderer.iter("item")]
    assert values[0] == 0 and values[-1] == 1 and values == sorted(values)


def assert_vector_matches(gpkg: Path, raster: Path, confidence: bool = False) -> None:
    """The GeoPackage of ``--vector`` holds the raster's polygons: rasterised by class_id
    they give back every pixel; class names and CRS come from the raster."""
    geometry, fields, crs = read_layer(gpkg)
    with rasterio.open(raster) as src:
        values, transform, shape = src.read(1), src.transform, src.shape
        assert crs == src.crs
    shapes = zip(geometry, fields["class_id"].tolist(), strict=True)
    back = rasterio.features.rasterize(shapes, out_shape=shape, transform=transform, dtype="uint8")
    np.testing.assert_array_equal(back, values)
    names = read_raster_classes(raster).names
    assert [names[k - 1] for k in fields["class_id"]] == fields["class"].tolist()
    assert ("mean_confidence" in fields) == confidence
    if confidence:
        assert ((fields["mean_confidence"] > 0) & (fields["mean_confidence"] <= 1)).all()
