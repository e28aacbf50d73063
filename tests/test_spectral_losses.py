"""The four reconstruction losses against values worked out by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from dltools.spectral.losses import (
    LOSSES,
    cosine_spectral_angle,
    spectral_angle,
    spectral_information_divergence,
    sse,
)

# Two pairs of spectra: a 3-4-5 pair and a pair whose angle is 90 degrees.
X = np.array([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
Y = np.array([[4.0, 3.0, 0.0], [0.0, 2.0, 0.0]], np.float32)


def value(loss, x, y):
    return np.asarray(loss(x, y))


def test_sse_sums_squared_differences_per_spectrum():
    # (3-4)^2 + (4-3)^2 + 0 = 2;  (1-0)^2 + (0-2)^2 = 5
    np.testing.assert_allclose(value(sse, X, Y), [2.0, 5.0])


def test_spectral_angle_and_its_cosine():
    # cos = (12 + 12) / (5 * 5) = 0.96 for the first pair, 0 for the second
    np.testing.assert_allclose(
        value(spectral_angle, X, Y), [math.acos(0.96), math.pi / 2], rtol=1e-6
    )
    np.testing.assert_allclose(value(cosine_spectral_angle, X, Y), [0.04, 1.0], rtol=1e-5)


def test_sid_is_the_symmetric_kl_divergence_of_normalised_spectra():
    # [1, 1] -> p = [1/2, 1/2];  [1, 3] -> q = [1/4, 3/4]
    # KL(p||q) + KL(q||p) = sum (p - q) (ln p - ln q)
    #   = (1/4) ln 2 + (-1/4) ln(2/3) = (1/4) ln 3
    sid = value(spectral_information_divergence, [[1.0, 1.0]], [[1.0, 3.0]])
    np.testing.assert_allclose(sid, [0.25 * math.log(3)], rtol=1e-6)
    assert value(spectral_information_divergence, [[2.0, 6.0]], [[1.0, 3.0]])[0] == pytest.approx(0)


def test_angle_losses_ignore_brightness_and_sse_does_not():
    darker = 0.4 * X
    assert value(sse, X, darker)[0] == pytest.approx(0.36 * 25)
    for loss in (spectral_angle, cosine_spectral_angle, spectral_information_divergence):
        assert np.all(value(loss, X, darker) < 1e-3), loss.__name__


def test_losses_and_gradients_stay_finite_on_zeros_and_identical_spectra():
    x = tf.constant([[0.0, 0.0, 0.5], [0.2, 0.3, 0.5]])
    y = tf.Variable([[0.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
    for name, loss in LOSSES.items():
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(loss(x, y))
        gradient = tape.gradient(total, y)
        assert np.isfinite(total.numpy()), name
        assert np.all(np.isfinite(gradient.numpy())), name
