"""Figures: arrays -> pictures for people (display stretches, overlays, matplotlib panels)."""
