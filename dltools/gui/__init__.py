"""Interactive windows (the OpenCV stroke painter)."""
