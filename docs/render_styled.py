"""Render a label COG as GIS software shows it: its own colour table and class names as legend,
beside the image with the polygons of its GeoPackage; writes the README's screenshot.

    python docs/render_styled.py demo_out/groundtruth/coast_ortho_mres_geo.tif \
        demo_data/geotiff/coast_ortho.tif docs/styled_labels.png

Everything drawn is read back from the files: colours from the raster's colour table, names
from its metadata, outlines from ``<raster>.gpkg``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import rasterio
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
from PIL import Image

from dltools.io.cog import read_raster_classes
from dltools.io.vectors import read_layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raster", help="label COG written by a dltools step")
    parser.add_argument("image", help="the image it labels")
    parser.add_argument("out", help="PNG to write")
    args = parser.parse_args()
    raster = Path(args.raster)
    classes = read_raster_classes(raster)
    with rasterio.open(raster) as src:
        values, table, bounds, crs = src.read(1), src.colormap(1), src.bounds, src.crs
    with rasterio.open(args.image) as src:
        image = np.moveaxis(src.read((1, 2, 3)), 0, -1)
    colours = np.array([table[k] for k in range(len(classes.names) + 1)]) / 255
    extent = (bounds.left, bounds.right, bounds.bottom, bounds.top)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.9), dpi=80, layout="constrained")
    left.imshow(image, extent=extent)
    geometry, fields, _ = read_layer(raster.with_suffix(".gpkg"))
    for shape, value in zip(geometry, fields["class_id"], strict=True):
        for ring in [shape.exterior, *shape.interiors]:
            x, y = np.asarray(ring.coords).T
            left.plot(x, y, color=colours[value], linewidth=0.8)
    left.set_title(f"image + {len(geometry)} polygons of the .gpkg", fontsize=9)
    right.imshow(
        values,
        cmap=ListedColormap(colours),
        vmin=-0.5,
        vmax=len(colours) - 0.5,
        interpolation="nearest",
        extent=extent,
    )
    right.set_title("the COG: its colour table, its class names", fontsize=9)
    handles = [Patch(color=colours[k], label=name) for k, name in enumerate(classes.names, 1)]
    right.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    for axis in (left, right):
        axis.set_axis_off()
    fig.suptitle(f"{raster.name} ({crs})", fontsize=10)
    fig.canvas.draw()
    rgb = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")
    rgb.quantize(colors=96).save(args.out, optimize=True)  # a small PNG for the README


if __name__ == "__main__":
    main()
