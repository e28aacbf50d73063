"""Step 2 for GeoTIFFs (the original dl_tools name); see :mod:`dltools.cli.label`."""

from dltools.cli.label import main_geotiff

if __name__ == "__main__":
    raise SystemExit(main_geotiff())
