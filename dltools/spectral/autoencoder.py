"""Per-pixel spectral autoencoders (after deephyp, Windrim et al. 2019): MLP and 1-D conv.

Both map (n, B) float32 spectra to (n, Z) latent vectors (:meth:`encode`) and back
(:meth:`decode`); calling the model reconstructs. They are Keras models registered for the
``.keras`` format, so a saved one reloads without this module's help beyond importing it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import keras
from keras import layers, ops

from dltools.errors import DltoolsError
from dltools.spectral.options import ConvOptions, MLPOptions

AUTOENCODERS = ("mlp", "conv")
MLP, CONV = MLPOptions(), ConvOptions()  # the defaults


def check_sizes(
    name: str, values: Sequence[int], count: int | None = None, allow_empty: bool = False
) -> tuple[int, ...]:
    """``values`` as a tuple of positive ints (``count`` of them if given), else DltoolsError."""
    values = tuple(int(v) for v in values)
    wrong_count = len(values) != count if count is not None else not (values or allow_empty)
    if wrong_count or any(v < 1 for v in values):
        need = f"{count} positive integer(s)" if count is not None else "positive integers"
        raise DltoolsError(f"{name} must be {need}, got {list(values)}")
    return values


def _activation(name: str):
    try:
        return keras.activations.get(name)
    except ValueError as err:
        raise DltoolsError(
            f"unknown activation {name!r} (try relu, sigmoid, tanh, linear)"
        ) from err


def _config(model: keras.Model, options: MLPOptions | ConvOptions) -> dict:
    """The Keras config of an autoencoder: its name, bands and the value of each option of
    its class (the fields of ``options``), tuples as lists (as JSON stores them)."""
    config = {"name": model.name, "bands": model.bands}
    for field in dataclasses.fields(options):
        value = getattr(model, field.name)
        config[field.name] = list(value) if isinstance(value, tuple) else value
    return config


@keras.saving.register_keras_serializable(package="dltools")
class MLPAutoencoder(keras.Model):
    """Fully connected autoencoder: B -> encoder_size[0] -> ... -> encoder_size[-1] (latent).

    The decoder mirrors the encoder. Hidden layers use ``activation``, the latent layer
    ``latent_activation`` and the output ``output_activation``. ``tied_weights``: each
    decoder layer uses the transposed kernel of its mirror encoder layer (with its own bias).
    ``skip_connections``: each hidden decoder layer adds the activations of the encoder layer
    of the same width; reconstructions improve but then need the input, so :meth:`decode` of
    latent vectors alone is refused.
    """

    def __init__(
        self,
        bands: int,
        encoder_size: Sequence[int] = MLP.encoder_size,
        activation: str = MLP.activation,
        latent_activation: str = MLP.latent_activation,
        output_activation: str = MLP.output_activation,
        tied_weights: bool = MLP.tied_weights,
        skip_connections: bool = MLP.skip_connections,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.bands = int(bands)
        self.encoder_size = check_sizes("encoder_size", encoder_size)
        self.activation = activation
        self.latent_activation = latent_activation
        self.output_activation = output_activation
        self.tied_weights = bool(tied_weights)
        self.skip_connections = bool(skip_connections)
        self._widths = (*reversed(self.encoder_size[:-1]), self.bands)  # decoder outputs
        self._activations = [_activation(activation)] * (len(self._widths) - 1)
        self._activations.append(_activation(output_activation))
        hidden = [activation] * (len(self.encoder_size) - 1)
        self.encoder_layers = [
            layers.Dense(n, activation=act, name=f"encoder_{i}")
            for i, (n, act) in enumerate(
                zip(self.encoder_size, [*hidden, latent_activation], strict=True)
            )
        ]
        self.decoder_layers = (
            []
            if self.tied_weights
            else [
                layers.Dense(n, activation=act, name=f"decoder_{i}")
                for i, (n, act) in enumerate(zip(self._widths, self._activations, strict=True))
            ]
        )

    @property
    def latent_size(self) -> int:
        return self.encoder_size[-1]

    def build(self, input_shape=None):
        width = self.bands
        for layer in self.encoder_layers:
            layer.build((None, width))
            width = layer.units
        if self.tied_weights:
            self.decoder_biases = [
                self.add_weight(shape=(n,), initializer="zeros", name=f"decoder_{i}_bias")
                for i, n in enumerate(self._widths)
            ]
        for layer in self.decoder_layers:
            layer.build((None, width))
            width = layer.units
        self.built = True

    def _encoder_outputs(self, x) -> list:
        outputs = []
        for layer in self.encoder_layers:
            x = layer(x)
            outputs.append(x)
        return outputs

    def encode(self, x):
        """(n, B) spectra -> (n, Z) latent vectors."""
        return self._encoder_outputs(x)[-1]

    def _decode(self, z, encoder_outputs=None):
        h = z
        for i, activation in enumerate(self._activations):
            if self.tied_weights:
                kernel = self.encoder_layers[-1 - i].kernel
                h = activation(ops.matmul(h, ops.transpose(kernel)) + self.decoder_biases[i])
            else:
                h = self.decoder_layers[i](h)
            if encoder_outputs is not None and i < len(self._widths) - 1:
                h = h + encoder_outputs[-2 - i]
        return h

    def decode(self, z):
        """(n, Z) latent vectors -> (n, B) spectra (not for models with skip connections)."""
        if self.skip_connections:
            raise DltoolsError(
                "this autoencoder has skip connections: its decoder needs the encoder's "
                "activations, so latent vectors alone cannot be decoded (reconstruct instead)"
            )
        return self._decode(z)

    def call(self, x):
        outputs = self._encoder_outputs(x)
        return self._decode(outputs[-1], outputs if self.skip_connections else None)

    def get_config(self) -> dict:
        return _config(self, MLP)


@keras.saving.register_keras_serializable(package="dltools")
class ConvAutoencoder(keras.Model):
    """1-D convolutional autoencoder over the bands of each spectrum.

    Encoder: ``len(filters)`` Conv1D layers (``filters[i]`` filters of ``kernel_sizes[i]``
    bands, stride ``strides[i]``, 'same' padding, ``activation``), flattened into a dense
    latent layer of ``latent_size`` units (``latent_activation``). The decoder mirrors it
    with a dense layer and Conv1DTranspose layers back to one channel (``output_activation``),
    cropped to B bands.
    """

    def __init__(
        self,
        bands: int,
        filters: Sequence[int] = CONV.filters,
        kernel_sizes: Sequence[int] = CONV.kernel_sizes,
        strides: Sequence[int] = CONV.strides,
        latent_size: int = CONV.latent_size,
        activation: str = CONV.activation,
        latent_activation: str = CONV.latent_activation,
        output_activation: str = CONV.output_activation,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.bands = int(bands)
        self.filters = check_sizes("filters", filters)
        n = len(self.filters)
        self.kernel_sizes = check_sizes("kernel_sizes", kernel_sizes, n)
        self.strides = check_sizes("strides", strides, n)
        self.latent_size = check_sizes("latent_size", [latent_size])[0]
        self.activation = activation
        self.latent_activation = latent_activation
        self.output_activation = output_activation
        for name in (activation, latent_activation, output_activation):
            _activation(name)  # unknown names fail here, not when the decoder is built
        length = self.bands
        for stride in self.strides:
            length = math.ceil(length / stride)
        self.encoder = keras.Sequential(
            [
                layers.Input((self.bands,)),
                layers.Reshape((self.bands, 1)),
                *[
                    layers.Conv1D(f, k, strides=s, padding="same", activation=activation)
                    for f, k, s in zip(self.filters, self.kernel_sizes, self.strides, strict=True)
                ],
                layers.Flatten(),
                layers.Dense(self.latent_size, activation=latent_activation, name="latent"),
            ],
            name="encoder",
        )
        transposed = [
            layers.Conv1DTranspose(
                self.filters[i - 1] if i else 1,
                self.kernel_sizes[i],
                strides=self.strides[i],
                padding="same",
                activation=activation if i else output_activation,
            )
            for i in reversed(range(n))
        ]
        self.decoder = keras.Sequential(
            [
                layers.Input((self.latent_size,)),
                layers.Dense(length * self.filters[-1], activation=activation),
                layers.Reshape((length, self.filters[-1])),
                *transposed,
                layers.Cropping1D((0, length * math.prod(self.strides) - self.bands)),
                layers.Flatten(),
            ],
            name="decoder",
        )

    def build(self, input_shape=None):
        self.built = True  # both Sequential halves are built from their Input layers

    def encode(self, x):
        """(n, B) spectra -> (n, Z) latent vectors."""
        return self.encoder(x)

    def decode(self, z):
        """(n, Z) latent vectors -> (n, B) spectra."""
        return self.decoder(z)

    def call(self, x):
        return self.decoder(self.encoder(x))

    def get_config(self) -> dict:
        return _config(self, CONV)


def build_autoencoder(kind: str, bands: int, **options) -> MLPAutoencoder | ConvAutoencoder:
    """A built ``"mlp"`` or ``"conv"`` autoencoder for ``bands``-band spectra.

    ``options`` are the keyword arguments of :class:`MLPAutoencoder` or
    :class:`ConvAutoencoder`.
    """
    if kind not in AUTOENCODERS:
        raise DltoolsError(f"unknown autoencoder {kind!r}; choose one of {', '.join(AUTOENCODERS)}")
    model = (MLPAutoencoder if kind == "mlp" else ConvAutoencoder)(bands, **options)
    model.build((None, bands))
    return model
