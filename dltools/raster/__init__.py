"""Raster geometry: the window maths shared by every step (grids, halos, blend ramps)."""
