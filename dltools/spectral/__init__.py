"""Spectral models for multispectral and hyperspectral cubes: per-pixel autoencoders and 1-D CNNs.

Modules: :mod:`~dltools.spectral.cube` (reading cubes, pre-processing, streaming pixels),
:mod:`~dltools.spectral.labelled` (labelled spectra in memory: a cube's labelled pixels or a
table), :mod:`~dltools.spectral.augment` (class oversampling, spectral augmentation),
:mod:`~dltools.spectral.losses` (SSE, SA, CSA, SID), :mod:`~dltools.spectral.autoencoder`,
:mod:`~dltools.spectral.classifier`, :mod:`~dltools.spectral.training`,
:mod:`~dltools.spectral.inference`, :mod:`~dltools.spectral.crossval` (k-fold accuracy against
1-NN baselines), :mod:`~dltools.spectral.folder` (a model's folder) and
:mod:`~dltools.spectral.synthetic` (synthetic scenes and spectra). Only the model modules
(autoencoder, classifier, losses, training, inference, crossval, folder) import TensorFlow;
importing this package does not.
"""
