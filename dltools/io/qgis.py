"""QGIS layer style files (``.qml``) written beside rasters, so they open styled with a legend.

- Class rasters (value ``k`` = class ``k``, 0 = nodata) get a *paletted* renderer: one entry
  per class with its value, colour and name.
- Continuous rasters (probabilities, confidence) get a *single-band pseudocolor* renderer:
  a viridis ramp interpolated over a value range.

QGIS loads ``<name>.qml`` automatically when it opens ``<name>.tif``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from matplotlib import colormaps

from dltools.io.labels import Classes
from dltools.io.outputs import atomic_path

QGIS_VERSION = "3.28.0"  # the style format written (read by QGIS 3.x)
RAMP_STOPS = 11  # colour stops of the continuous ramp


def qml_path(raster_path: str | os.PathLike) -> Path:
    """The style file QGIS loads with ``raster_path``: the same name with ``.qml``."""
    return Path(raster_path).with_suffix(".qml")


def _hex(rgb: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def _document(renderer: ET.Element) -> ET.ElementTree:
    """A QGIS style document around a raster ``renderer`` element."""
    root = ET.Element("qgis", version=QGIS_VERSION, styleCategories="AllStyleCategories")
    pipe = ET.SubElement(root, "pipe")
    pipe.append(renderer)
    ET.SubElement(
        pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1"
    )  # QGIS writes these two; older versions expect them
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0")
    ET.SubElement(root, "blendMode").text = "0"
    ET.indent(root)
    return ET.ElementTree(root)


def paletted_style(classes: Classes) -> ET.ElementTree:
    """A paletted renderer: value ``k`` drawn in ``classes.colors[k - 1]`` ((K, 3) uint8 RGB),
    labelled ``classes.names[k - 1]``; other values (nodata 0) are not drawn."""
    renderer = ET.Element(
        "rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1", nodataColor=""
    )
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    for value, (name, rgb) in enumerate(zip(classes.names, classes.colors, strict=True), 1):
        ET.SubElement(
            palette, "paletteEntry", value=str(value), color=_hex(rgb), alpha="255", label=name
        )
    return _document(renderer)


def pseudocolor_style(minimum: float = 0.0, maximum: float = 1.0) -> ET.ElementTree:
    """A continuous renderer: viridis interpolated from ``minimum`` to ``maximum``."""
    bounds = {"classificationMin": repr(minimum), "classificationMax": repr(maximum)}
    renderer = ET.Element(
        "rasterrenderer",
        type="singlebandpseudocolor",
        band="1",
        opacity="1",
        alphaBand="-1",
        nodataColor="",
        **bounds,
    )
    ET.SubElement(renderer, "rasterTransparency")
    shader = ET.SubElement(ET.SubElement(renderer, "rastershader"), "colorrampshader")
    shader.attrib.update(
        colorRampType="INTERPOLATED",
        classificationMode="1",
        clip="0",
        minimumValue=repr(minimum),
        maximumValue=repr(maximum),
    )
    ramp = colormaps["viridis"]
    for fraction in np.linspace(0.0, 1.0, RAMP_STOPS):
        value = minimum + fraction * (maximum - minimum)
        rgb = np.round(np.array(ramp(fraction)[:3]) * 255)
        ET.SubElement(
            shader, "item", value=f"{value:g}", color=_hex(rgb), alpha="255", label=f"{value:g}"
        )
    return _document(renderer)


def write_qml(path: str | os.PathLike, style: ET.ElementTree) -> None:
    """Write a style document (from :func:`paletted_style` / :func:`pseudocolor_style`),
    atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(b"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n")
        style.write(out, encoding="utf-8")
