"""dltools: label and segment geospatial imagery.

Importing the package quietens TensorFlow's C++ logging (unless TF_CPP_MIN_LOG_LEVEL is set).
The package holds all logic; the step folders (``create_library/`` ...) and the ``dltools``
console command are thin wrappers over :mod:`dltools.cli`.
"""

import os

# TensorFlow's C++ start-up lines (oneDNN, CUDA, CPU features) are hidden unless the user sets
# the level: this must happen before anything imports TensorFlow, and every module of the
# package imports this one first.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from dltools.errors import DltoolsError

__version__ = "0.1.0"
__all__ = ["DltoolsError", "__version__"]
