"""The options of spectral models and of their training, with their defaults.

One place for the defaults that the model classes, the trainer and the command line share.
Saved in every model's config.json. This module does not import TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

from dltools.errors import DltoolsError
from dltools.spectral.augment import Augmentation

BLOCK = 256  # rows and columns per window read from disk
PREDICT_BATCH = 1024  # spectra per network call when applying a model (bounds its memory)
SCALINGS = ("minmax", "standard", "none")  # see dltools.spectral.cube.Scaling
LOSSES = ("sse", "sa", "csa", "sid")
OPTIMIZERS = ("adam", "sgd")
DECAYS = ("none", "exponential", "piecewise")
HEADS = ("flatten", "max", "average")  # see dltools.spectral.classifier.build_classifier


@dataclass(frozen=True)
class MLPOptions:
    """Architecture of :class:`~dltools.spectral.autoencoder.MLPAutoencoder`."""

    encoder_size: tuple[int, ...] = (50, 30, 10)
    activation: str = "relu"
    latent_activation: str = "linear"
    output_activation: str = "linear"
    tied_weights: bool = False
    skip_connections: bool = False


@dataclass(frozen=True)
class ConvOptions:
    """Architecture of :class:`~dltools.spectral.autoencoder.ConvAutoencoder`."""

    filters: tuple[int, ...] = (8, 16)
    kernel_sizes: tuple[int, ...] = (9, 5)
    strides: tuple[int, ...] = (2, 2)
    latent_size: int = 10
    activation: str = "relu"
    latent_activation: str = "linear"
    output_activation: str = "linear"


@dataclass(frozen=True)
class ClassifierOptions:
    """Architecture of :func:`~dltools.spectral.classifier.build_classifier`."""

    conv_filters: tuple[int, ...] = (16, 32)
    kernel_sizes: tuple[int, ...] = (7, 5)
    pool_size: int = 2
    head: str = "flatten"
    dense_units: tuple[int, ...] = (64,)
    batch_norm: bool = True
    dropout: float = 0.2


@dataclass(frozen=True)
class Training:
    """How a model is trained; saved in its config.json as the ``training`` section.

    ``loss`` applies to autoencoders (sse, sa, csa or sid); ``holdout`` (fraction of the
    labelled spectra kept for validation), ``patience`` (early stopping after that many epochs
    without better validation accuracy; 0: never), ``balance`` (every class oversampled to
    the size of the largest in each epoch) and the augmentation of training spectra
    (``shift``, ``flip``, ``gain``, ``offset``, ``noise``: see
    :class:`~dltools.spectral.augment.Augmentation`) to classifiers, whose defaults are
    :data:`CLASSIFIER_TRAINING`; the optimiser options are those of
    :func:`~dltools.spectral.training.make_optimizer`. ``epochs`` is the total number of
    epochs, ``save_epochs`` those after which a checkpoint is saved, ``block`` the size of the
    windows read from disk.
    """

    loss: str = "sse"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    decay: str = "none"
    decay_steps: int = 1000
    decay_rate: float = 0.5
    boundaries: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 20
    save_epochs: tuple[int, ...] = ()
    seed: int = 0
    holdout: float = 0.2
    patience: int = 5
    balance: bool = True
    shift: int = 0
    flip: bool = False
    gain: float = 0.0
    offset: float = 0.0
    noise: float = 0.0
    tensorboard: bool = False
    block: int = BLOCK

    def __post_init__(self):
        problems = []
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.batch_size < 1 or self.epochs < 1 or self.block < 16:
            problems.append("batch_size and epochs must be >= 1 and block >= 16")
        if any(not 1 <= e <= self.epochs for e in self.save_epochs):
            problems.append(f"save_epochs {list(self.save_epochs)} must lie in 1..{self.epochs}")
        if not 0 <= self.holdout < 1 or self.patience < 0:
            problems.append("holdout must lie in [0, 1) and patience be >= 0")
        if problems:
            raise DltoolsError("; ".join(problems))
        self.augmentation  # noqa: B018  (checks the augmentation options)

    @property
    def augmentation(self) -> Augmentation:
        """The :class:`~dltools.spectral.augment.Augmentation` of classifier training spectra."""
        return Augmentation(self.shift, self.flip, self.gain, self.offset, self.noise)

    @classmethod
    def from_dict(cls, saved: dict) -> Training:
        """The inverse of :func:`dataclasses.asdict` after a JSON round trip."""
        lists = ("boundaries", "rates", "save_epochs")
        return cls(**{k: tuple(v) if k in lists else v for k, v in saved.items()})


# small labelled sets (a few hundred spectra): many short epochs of oversampled, augmented
# spectra, stopped on validation accuracy
CLASSIFIER_TRAINING = Training(
    batch_size=32,
    epochs=150,
    patience=30,
    shift=6,
    gain=0.2,
    offset=0.02,
    noise=0.01,
)
