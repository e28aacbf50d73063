"""Pixels for networks: which bands of an image feed a model, in what range.

Every step that gives pixels to a CNN (tile library, tile segmentation, FCN) converts them here,
through one :class:`BandChoice`: three 1-based band numbers (the network's R, G and B; a grey
image feeds band 1 three times), the band count and dtype of the images it was made for and,
for images that are not 8-bit, the per-band range stretched to 0-255. The choice is made once,
when training data are prepared (:func:`choose_bands`, :func:`stretch_ranges`), saved with the
model (:meth:`BandChoice.to_dict`) and checked against every image at inference
(:meth:`BandChoice.for_image`): an image with another band count or dtype is refused unless
``--bands`` says which of its bands to use, never guessed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from dltools.errors import DltoolsError

PERCENTILES = (2.0, 98.0)  # default stretch of non-8-bit bands: these percentiles -> 0, 255
BANDS_HELP = (
    "which bands feed the network, as 1-based band numbers: three (R,G,B, e.g. 1,2,3 for the "
    "colour bands of an RGBA or RGB+NIR image, 4,3,2 for a false-colour composite) or one "
    "(a grey band, repeated). Without it 3-band images feed bands 1,2,3 and 1-band images "
    "band 1; other band counts are an error"
)


def parse_bands(text: str) -> tuple[int, int, int]:
    """``"1,2,3"`` -> (1, 2, 3); ``"2"`` -> (2, 2, 2). DltoolsError unless 1 or 3 numbers >= 1."""
    try:
        numbers = tuple(int(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        numbers = ()
    if len(numbers) not in (1, 3) or min(numbers, default=0) < 1:
        raise DltoolsError(
            f"--bands {text}: give three band numbers (1-based, e.g. 1,2,3) or one (grey)"
        )
    return numbers * 3 if len(numbers) == 1 else numbers  # type: ignore[return-value]


def parse_range(text: str) -> tuple[float, float]:
    """``"0,10000"`` -> (0.0, 10000.0): a fixed stretch range; DltoolsError unless LOW < HIGH."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        low = high = float("nan")
    if not low < high:
        raise DltoolsError(f"--stretch {text}: give LOW,HIGH with LOW < HIGH, e.g. 0,10000")
    return low, high


def _names(bands: Sequence[int]) -> str:
    return ",".join(str(b) for b in bands)


@dataclass(frozen=True)
class BandChoice:
    """How an image becomes a network's (h, w, 3) uint8 input.

    ``bands``: 1-based band numbers feeding R, G, B; ``count`` and ``dtype``: the band count and
    dtype of the images the model was trained on; ``ranges``: for non-uint8 images, the
    ``(low, high)`` of each of the three bands that is stretched linearly to 0-255 (clipped),
    None for uint8.
    """

    bands: tuple[int, int, int] = (1, 2, 3)
    count: int = 3
    dtype: str = "uint8"
    ranges: tuple[tuple[float, float], ...] | None = None

    def describe(self) -> str:
        """``"bands 1,2,3 of 3-band uint8 images"`` (and the stretch, if any)."""
        text = f"bands {_names(self.bands)} of {self.count}-band {self.dtype} images"
        if self.ranges is not None:
            text += " stretched from " + ", ".join(f"{lo:g}..{hi:g}" for lo, hi in self.ranges)
        return text

    def to_dict(self) -> dict:
        """JSON-ready form (saved with a model)."""
        return {
            "bands": list(self.bands),
            "count": self.count,
            "dtype": self.dtype,
            "ranges": None if self.ranges is None else [list(r) for r in self.ranges],
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> BandChoice:
        """The inverse of :meth:`to_dict`; None (a model saved before bands were recorded):
        bands 1,2,3 of 3-band uint8 images."""
        if data is None:
            return cls()  # as RGB8
        ranges = data.get("ranges")
        return cls(
            tuple(int(b) for b in data["bands"]),  # type: ignore[arg-type]
            int(data["count"]),
            str(data["dtype"]),
            None if ranges is None else tuple((float(lo), float(hi)) for lo, hi in ranges),
        )

    def for_image(
        self,
        count: int,
        dtype: str,
        source: str | os.PathLike,
        bands: Sequence[int] | None = None,
        model: str | os.PathLike = "the model",
    ) -> BandChoice:
        """The choice for an image of ``count`` bands of ``dtype`` at inference.

        Without ``bands`` the image must be like the training images (same band count); with
        ``bands`` (``--bands``) those of its bands feed the network. The dtype must be the
        training images' (the stretch is theirs). Anything else is a DltoolsError naming the
        image, the model's bands and ``--bands``.
        """
        if dtype != self.dtype:
            raise DltoolsError(
                f"{source} holds {dtype} pixels but {model} was trained on {self.describe()}: "
                "give images of the training dtype (or retrain on these)"
            )
        if bands is None:
            if count != self.count:
                raise DltoolsError(
                    f"{source} has {count} band(s) but {model} was trained on "
                    f"{self.describe()}: pass --bands to say which of its bands feed the "
                    f"network (e.g. --bands {_names(self.bands)})"
                )
            return self
        chosen = tuple(bands)
        _check_numbers(chosen, count, source)
        return replace(self, bands=chosen, count=count)  # type: ignore[arg-type]

    def apply(self, pixels: np.ndarray, source: str | os.PathLike = "the image") -> np.ndarray:
        """(h, w, C) pixels of an image this choice is for -> (h, w, 3) uint8.

        Values outside a stretch range are clipped; NaN becomes 0.
        """
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        _check_numbers(self.bands, pixels.shape[2], source)
        chosen = pixels[..., [b - 1 for b in self.bands]]
        if self.ranges is None:
            if chosen.dtype != np.uint8:
                raise DltoolsError(
                    f"{source} holds {chosen.dtype} pixels but no stretch to 8 bits was chosen"
                )
            return chosen
        low = np.array([lo for lo, _ in self.ranges], np.float32)
        high = np.array([hi for _, hi in self.ranges], np.float32)
        scaled = (chosen.astype(np.float32) - low) * (255.0 / (high - low))
        return np.nan_to_num(np.clip(scaled + 0.5, 0, 255), nan=0.0).astype(np.uint8)


RGB8 = BandChoice()  # bands 1,2,3 of 3-band uint8 images: models that record no choice


def _check_numbers(bands: Sequence[int], count: int, source: str | os.PathLike) -> None:
    bad = [b for b in bands if not 1 <= b <= count]
    if bad:
        raise DltoolsError(
            f"{source} has {count} band(s): --bands {_names(bands)} names band(s) "
            f"{_names(bad)} it does not have"
        )


def choose_bands(
    count: int, source: str | os.PathLike, bands: Sequence[int] | None = None
) -> tuple[int, int, int]:
    """The bands of a training image of ``count`` bands that feed the network.

    ``bands`` (``--bands``, see :func:`parse_bands`) if given, checked; else 1,2,3 for 3
    bands and 1,1,1 for one; other counts (RGBA, RGB+NIR, multispectral) are a DltoolsError
    asking for ``--bands``.
    """
    if bands is not None:
        _check_numbers(bands, count, source)
        return tuple(bands)  # type: ignore[return-value]
    if count == 3:
        return (1, 2, 3)
    if count == 1:
        return (1, 1, 1)
    raise DltoolsError(
        f"{source} has {count} bands: say which feed the network with --bands (three band "
        "numbers, e.g. --bands 1,2,3 for the colour bands of an RGBA or RGB+NIR image, or one "
        "grey band, e.g. --bands 1)"
    )


def stretch_ranges(
    samples: np.ndarray | None,
    bands: Sequence[int],
    fixed: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = PERCENTILES,
) -> tuple[tuple[float, float], ...]:
    """``(low, high)`` per chosen band: ``fixed`` for all, or the ``percentiles`` of ``samples``.

    ``samples``: (n, C) pixels sampled from the training images (finite values are used;
    may be None with ``fixed``).
    A band with no spread gets ``(low, low + 1)``.
    """
    if fixed is not None:
        return tuple(fixed for _ in bands)
    ranges = []
    for band in bands:
        values = samples[:, band - 1].astype(np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            raise DltoolsError("no valid pixels to compute the stretch from (all nodata or NaN)")
        low, high = np.percentile(values, percentiles)
        ranges.append((float(low), float(high) if high > low else float(low) + 1.0))
    return tuple(ranges)


def rgb8(pixels: np.ndarray, source: str | os.PathLike) -> np.ndarray:
    """(h, w, C) 8-bit tiles -> (h, w, 3) uint8 RGB: grey is repeated, bands after the third
    dropped. For tile files written by step 3 (always 8-bit RGB or grey JPGs).

    Other dtypes than uint8 and 2-band images are a DltoolsError.
    """
    if pixels.dtype != np.uint8:
        raise DltoolsError(f"{source} holds {pixels.dtype} pixels; tiles are 8-bit RGB")
    if pixels.shape[2] == 2:
        raise DltoolsError(f"{source} has 2 bands; tiles have 1 (grey) or 3 (RGB)")
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[..., :3]
