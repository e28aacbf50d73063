"""The one rule that pairs images with their label files.

Names are compared through :func:`pairing_key`: the file stem, lowercased, keeping only
letters and digits (``SCLS_StMarg26607.tif`` -> ``sclsstmarg26607``). A label file belongs to
an image when

1. the image's key occurs inside the label's key, and
2. that occurrence does not extend a number: if the image key ends (starts) with a digit, the
   label key has no digit right after (before) it, so ``img_1`` never takes ``img_10_label``.

When several images qualify, the longest key wins, then a key found at the start or end of
the label's key; a label still matching two images equally is an error. So
``StMarg_26607.jpg`` pairs with ``SCLS_StMarg26607.tif``, and ``<name>.jpg`` with
``<name>_mres.mat``, ``<name>_label.png``, ``<name>_gtFine_color.png`` and
``<name>_mres_geo.tif`` (or the original tool's ``<name>mres_geo.tif``).
An image with two label files is an error too; images without one are returned separately.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from dltools.errors import DltoolsError


def pairing_key(path: str | os.PathLike) -> str:
    """The stem of ``path``, lowercased, with everything but letters and digits removed."""
    return re.sub(r"[\W_]+", "", Path(path).stem.casefold())


def _match(image_key: str, label_key: str) -> tuple[int, bool] | None:
    """``(key length, found at an end of label_key)`` for the best occurrence, or None."""
    best = None
    start = label_key.find(image_key)
    while image_key and start >= 0:
        end = start + len(image_key)
        glued_before = start > 0 and label_key[start - 1].isdigit() and image_key[0].isdigit()
        glued_after = end < len(label_key) and label_key[end].isdigit() and image_key[-1].isdigit()
        if not (glued_before or glued_after):
            quality = (len(image_key), start == 0 or end == len(label_key))
            best = quality if best is None else max(best, quality)
        start = label_key.find(image_key, start + 1)
    return best


def _image_for(label: Path, keyed_images: Sequence[tuple[Path, str]]) -> Path | None:
    """The one image of ``(image, key)`` pairs that ``label`` belongs to, or None."""
    label_key = pairing_key(label)
    scored = [(m, image) for image, key in keyed_images if (m := _match(key, label_key))]
    if not scored:
        return None
    best = max(m for m, _ in scored)
    winners = [image for m, image in scored if m == best]
    if len(winners) > 1:
        raise DltoolsError(
            f"label file {label} matches several images equally well: "
            f"{', '.join(map(str, winners))}; rename the files so that each label name "
            "contains exactly one image name"
        )
    return winners[0]


def pair_images_with_labels(
    images: Sequence[str | os.PathLike], labels: Sequence[str | os.PathLike]
) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pair images with label files by the rule of this module.

    Returns ``(pairs, unpaired)``: ``(image, label)`` pairs in the order of ``images``, and the
    images that have no label. Labels that fit no image are ignored.
    """
    images = [Path(p) for p in images]
    keyed = [(image, pairing_key(image)) for image in images]
    found: dict[Path, list[Path]] = {image: [] for image in images}
    for label in map(Path, labels):
        image = _image_for(label, keyed)
        if image is not None:
            found[image].append(label)
    doubles = {image: hits for image, hits in found.items() if len(hits) > 1}
    if doubles:
        listed = "; ".join(f"{i}: {', '.join(map(str, h))}" for i, h in doubles.items())
        raise DltoolsError(f"image(s) with more than one label file: {listed}; keep one of each")
    pairs = [(image, found[image][0]) for image in images if found[image]]
    unpaired = [image for image in images if not found[image]]
    return pairs, unpaired


def visible_files(folder: str | os.PathLike, pattern: str = "*") -> list[Path]:
    """The files directly in ``folder`` whose names match the glob ``pattern``, sorted by name;
    hidden files (such as the temporary files of unfinished writes) are left out. A missing
    folder is a DltoolsError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DltoolsError(f"{folder}: folder not found")
    return sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))


def find_label_files(
    folder: str | os.PathLike, images: Sequence[str | os.PathLike], pattern: str = "*"
) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pair ``images`` with the files in ``folder`` whose names match the glob ``pattern``.

    For example ``pattern="*_mres.mat"`` or ``"SCLS_*.tif"``. Hidden files and the images
    themselves are never taken as labels. Returns ``(pairs, unpaired images)`` like
    :func:`pair_images_with_labels`.
    """
    own = {Path(p).resolve() for p in images}
    labels = [p for p in visible_files(folder, pattern) if p.resolve() not in own]
    return pair_images_with_labels(images, labels)
