"""dltools: label and segment geospatial imagery.

The package holds all logic; the step folders (``create_library/`` ...) and the ``dltools``
console command are thin wrappers over :mod:`dltools.cli`.
"""

from dltools.errors import DltoolsError

__version__ = "0.1.0"
__all__ = ["DltoolsError", "__version__"]
