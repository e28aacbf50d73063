"""Spectral models for multispectral and hyperspectral cubes: per-pixel autoencoders and 1-D CNNs.

Modules: :mod:`~dltools.spectral.cube` (reading cubes, pre-processing, streaming pixels),
:mod:`~dltools.spectral.losses` (SSE, SA, CSA, SID), :mod:`~dltools.spectral.autoencoder`,
:mod:`~dltools.spectral.classifier`, :mod:`~dltools.spectral.training`,
:mod:`~dltools.spectral.inference`, :mod:`~dltools.spectral.folder` (a model's folder) and
:mod:`~dltools.spectral.synthetic` (synthetic scenes). Only the model modules import
TensorFlow; importing this package does not.
"""
