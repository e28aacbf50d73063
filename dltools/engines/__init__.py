"""Engines: NumPy arrays in, NumPy arrays out (CRF, refiners, metrics, tile grids).

Engines never read or write files.
"""
