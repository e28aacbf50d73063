"""Models: loading any model, TF-Hub feature extractors, the bottleneck cache, the tile classifier.

TensorFlow is imported only by the modules that need it (:mod:`dltools` quietens its logging).
"""
