"""Small labelled sets of spectra: class oversampling and augmentations that suit spectra.

nnSIC-style oversampling draws every class as often as the largest one in each epoch; each
copy of a spectrum is then augmented differently: shifted by a few bands (calibration drift
between instruments and sessions), reversed (only where the instrument's dispersion direction
is unknown), scaled and offset (exposure, distance, stray light) and given white noise.
Everything works on ``(n, B)`` float32 arrays of pre-processed spectra; numpy only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dltools.errors import DltoolsError


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to each training spectrum (pre-processed units).

    ``shift``: the spectrum moves by a whole number of bands drawn uniformly in
    [-shift, shift] (the end values are repeated into the gap); ``flip``: reversed with
    probability 1/2; ``gain``: multiplied by a factor drawn uniformly in [1 - gain, 1 + gain];
    ``offset``: plus a constant drawn uniformly in [-offset, offset]; ``noise``: plus white
    Gaussian noise of this standard deviation. Zero (False) turns a change off.
    """

    shift: int = 0
    flip: bool = False
    gain: float = 0.0
    offset: float = 0.0
    noise: float = 0.0

    def __post_init__(self):
        if self.shift < 0 or min(self.gain, self.offset, self.noise) < 0 or self.gain >= 1:
            raise DltoolsError(
                "augmentation: shift, offset and noise must be >= 0 and gain in [0, 1), got "
                f"shift {self.shift}, gain {self.gain}, offset {self.offset}, noise {self.noise}"
            )

    def __call__(self, spectra: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, B) float32 spectra -> (n, B) float32 augmented spectra (the input is unchanged)."""
        x = np.asarray(spectra, np.float32)
        n, bands = x.shape
        if self.shift:
            moves = rng.integers(-self.shift, self.shift + 1, n)
            source = np.clip(np.arange(bands)[None, :] - moves[:, None], 0, bands - 1)
            x = np.take_along_axis(x, source, axis=1)
        if self.flip:
            reverse = rng.random(n) < 0.5
            x = np.where(reverse[:, None], x[:, ::-1], x)
        if self.gain:
            x = x * rng.uniform(1 - self.gain, 1 + self.gain, (n, 1)).astype(np.float32)
        if self.offset:
            x = x + rng.uniform(-self.offset, self.offset, (n, 1)).astype(np.float32)
        if self.noise:
            x = x + np.float32(self.noise) * rng.standard_normal(x.shape, np.float32)
        return x


def oversample(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices into ``classes`` ((n,) ints) in random order, every class as often as the largest.

    Each class's samples all appear ``m // n_k`` times, plus ``m % n_k`` of them drawn
    without replacement (m: the largest class's size, n_k: this class's), as nnSIC balances
    its training sets. Returns (K * m,) int64.
    """
    classes = np.asarray(classes)
    found, counts = np.unique(classes, return_counts=True)
    largest = counts.max()
    picks = []
    for value, count in zip(found, counts, strict=True):
        members = np.flatnonzero(classes == value)
        extra = rng.choice(members, largest % count, replace=False)
        picks.append(np.concatenate([np.tile(members, largest // count), extra]))
    return rng.permutation(np.concatenate(picks))


def epoch_batches(
    spectra: np.ndarray,
    classes: np.ndarray,
    batch_size: int,
    augmentation: Augmentation,
    rng: np.random.Generator,
    balance: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of shuffled, augmented batches ``(x (b, B) float32, y (b,) int32)``.

    With ``balance`` every class is oversampled to the largest's size (:func:`oversample`);
    otherwise every spectrum comes once. The last batch may be smaller.
    """
    order = oversample(classes, rng) if balance else rng.permutation(len(classes))
    for start in range(0, len(order), batch_size):
        pick = order[start : start + batch_size]
        yield augmentation(spectra[pick], rng), np.asarray(classes[pick], np.int32)
