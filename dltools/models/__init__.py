"""Models: loading any model, TF-Hub feature extractors, the bottleneck cache, the tile classifier.

Importing this package quietens TensorFlow's C++ logging (unless TF_CPP_MIN_LOG_LEVEL is set);
TensorFlow itself is imported only by the modules that need it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
