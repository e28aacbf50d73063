"""Every matplotlib figure of the pipeline, written as PNG.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state), so they
work without a display and from worker threads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dltools.figures.display import overlay, to_display
from dltools.io.outputs import atomic_path

MAX_FIGURE_PIXELS = 1600  # longest side of images drawn in figures
MAX_FIGURE_ASPECT = 20  # rasters more elongated than this are not drawn


def drawable(shape: tuple[int, ...]) -> bool:
    """Whether a ``(rows, cols, ...)`` raster can be drawn as a picture.

    A figure keeps the raster's aspect ratio, so a strip such as a 175 x 1 table of spectra
    stored as a cube would become a figure 1,200 inches tall (over 10 GB of pixels).
    """
    return max(shape[:2]) <= MAX_FIGURE_ASPECT * min(shape[:2])


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> None:
    """Write ``fig`` as a PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")


def shrink(array: np.ndarray, longest: int = MAX_FIGURE_PIXELS, labels: bool = False) -> np.ndarray:
    """Downsample an (H, W[, C]) array so its longest side is at most ``longest`` pixels.

    Label images (``labels=True``) use nearest neighbour, pictures use area averaging.
    """
    height, width = array.shape[:2]
    factor = longest / max(height, width)
    if factor >= 1:
        return array
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_NEAREST if labels else cv2.INTER_AREA
    return cv2.resize(array, size, interpolation=interpolation)


def thicken_strokes(strokes: np.ndarray, longest: int = MAX_FIGURE_PIXELS) -> np.ndarray:
    """Grow (H, W) stroke labels so they stay about 3 figure pixels wide after :func:`shrink`."""
    factor = max(strokes.shape[:2]) / longest
    radius = max(1, int(np.ceil(1.5 * factor)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(np.asarray(strokes, np.uint16), kernel)


def class_legend(fig: Figure, class_names: Sequence[str], colors: np.ndarray) -> None:
    """A legend of class colour patches below the panels of ``fig``."""
    handles = [
        Patch(facecolor=np.asarray(color) / 255.0, edgecolor="k", label=name)
        for name, color in zip(class_names, colors, strict=True)
    ]
    fig.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 6), frameon=False
    )


def panel_figure(
    panels: Sequence[tuple[str, np.ndarray]],
    class_names: Sequence[str],
    colors: np.ndarray,
    title: str = "",
) -> Figure:
    """Pictures side by side, each (h, w, 3) uint8 with its title, above a class legend."""
    height, width = panels[0][1].shape[:2]
    fig = Figure(figsize=(4.5 * len(panels), 4.5 * height / width + 1.0), layout="constrained")
    for i, (name, picture) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(picture)
        ax.set_title(name)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    class_legend(fig, class_names, colors)
    return fig


def groundtruth_figure(
    image: np.ndarray,
    strokes: np.ndarray,
    class_map: np.ndarray,
    class_names: Sequence[str],
    colors: np.ndarray,
    title: str = "",
) -> Figure:
    """Three panels: the image; the image with strokes; the image with the dense labels.

    image: (H, W, C) any dtype; strokes: (H, W) int, 0 = no stroke, k = class k;
    class_map: (H, W) uint8, 0-based classes, values >= len(class_names) (nodata) not drawn;
    colors: (K, 3) uint8 RGB.
    """
    rgb = shrink(to_display(image))
    thick = shrink(thicken_strokes(strokes), labels=True)
    labels = shrink(class_map, labels=True).astype(np.uint16) + 1
    labels[labels > len(class_names)] = 0
    panels = [
        ("image", rgb),
        ("strokes", overlay(rgb, thick, colors, alpha=1.0)),
        ("labels", overlay(rgb, labels, colors)),
    ]
    return panel_figure(panels, class_names, colors, title)


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str = "") -> Figure:
    """A confusion matrix as a heat map with class names on both axes and values in the cells.

    confusion: (K, K) counts, row = true class, column = predicted class. Each row is divided
    by its sum (rows without samples stay 0), so cells are per-class rates.
    """
    counts = np.asarray(confusion, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    values = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    k = len(class_names)
    side = 2.0 + 0.6 * k
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:
        threshold = 0.5 * (values.max() if values.size else 1)
        for (i, j), value in np.ndenumerate(values):
            color = "white" if value > threshold else "black"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color=color, fontsize=8)
    ax.set_title(title or "confusion matrix (rows sum to 1)")
    return fig


def latent_figure(latent: np.ndarray, title: str = "") -> Figure:
    """One panel per band of an (H, W, Z) latent image, each stretched between its 1st and
    99th percentiles (NaN, i.e. nodata, left blank)."""
    bands = latent.shape[2]
    cols = min(bands, 5)
    rows = -(-bands // cols)
    height, width = latent.shape[:2]
    fig = Figure(figsize=(3 * cols, 3 * rows * height / width + 0.6))
    for b in range(bands):
        band = shrink(np.ascontiguousarray(latent[..., b], np.float32))
        finite = band[np.isfinite(band)]
        low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        ax = fig.add_subplot(rows, cols, b + 1)
        ax.imshow(band, cmap="viridis", vmin=low, vmax=high)
        ax.set_title(f"latent {b + 1}", fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def spectra_figure(
    spectra: np.ndarray,
    reconstructions: np.ndarray,
    names: Sequence[str],
    title: str = "",
    fit_scale: bool = False,
) -> Figure:
    """Panels of spectra (n, B) against their reconstructions (n, B), one per pixel ``names``.

    ``fit_scale`` multiplies each reconstruction by its least-squares factor onto the input,
    for models trained with a loss blind to brightness (spectral angle, SID).
    """
    if fit_scale:
        factors = (spectra * reconstructions).sum(axis=1) / np.maximum(
            np.square(reconstructions).sum(axis=1), 1e-12
        )
        reconstructions = reconstructions * factors[:, None]
    label = "reconstruction x best scale" if fit_scale else "reconstruction"
    count = len(spectra)
    cols = min(max(count, 1), 3)
    rows = max(1, -(-count // cols))
    fig = Figure(figsize=(4 * cols, 2.8 * rows))
    bands = np.arange(1, spectra.shape[1] + 1) if count else np.arange(1)
    for i in range(count):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(bands, spectra[i], color="k", lw=1.2, label="input")
        ax.plot(bands, reconstructions[i], color="tab:red", lw=1, ls="--", label=label)
        ax.set_title(names[i], fontsize=9)
        ax.set_xlabel("band")
        if i == 0:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_map_figure(
    class_map: np.ndarray,
    values: Sequence[int],
    class_names: Sequence[str],
    colors: np.ndarray,
    title: str = "",
) -> Figure:
    """A map of class values (H, W) in class colours ((K, 3) uint8 for ``values``), with a
    legend; 0 (unknown or nodata) is black."""
    lut = np.zeros((max(max(values), int(class_map.max())) + 1, 3), np.uint8)
    lut[np.asarray(values)] = colors
    picture = lut[shrink(class_map, labels=True)]
    height, width = picture.shape[:2]
    fig = Figure(figsize=(7, 7 * height / width + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(picture, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    class_legend(fig, [*class_names, "unknown / nodata"], np.vstack([colors, [[0, 0, 0]]]))
    return fig


def segmentation_figure(
    image: np.ndarray,
    tile_classes: np.ndarray,
    tile_confidence: np.ndarray,
    class_map: np.ndarray,
    class_names: Sequence[str],
    colors: np.ndarray,
    title: str = "",
) -> Figure:
    """Three panels: the image; its tile classes shaded by their probability; the refined labels.

    image: (h, w, 3) uint8 RGB; tile_classes: (h, w) int, class + 1 of each pixel's tile,
    0 = none (not classified or below the threshold, left unshaded); tile_confidence: (h, w)
    float, the tile's top probability (the opacity of its colour); class_map: (h, w) 0-based,
    values >= len(class_names) (nodata) not drawn; colors: (K, 3) uint8 RGB.
    """
    rgb = shrink(image)
    size = (rgb.shape[1], rgb.shape[0])
    tiles = cv2.resize(np.asarray(tile_classes, np.uint16), size, interpolation=cv2.INTER_NEAREST)
    alpha = cv2.resize(
        np.asarray(tile_confidence, np.float32), size, interpolation=cv2.INTER_NEAREST
    )
    alpha = np.where(tiles > 0, np.clip(alpha, 0, 1), 0)[..., None]
    lut = np.vstack([np.zeros((1, 3)), np.asarray(colors, float)])
    shaded = np.round((1 - alpha) * rgb + alpha * lut[tiles]).astype(np.uint8)
    labels = cv2.resize(np.asarray(class_map, np.uint16), size, interpolation=cv2.INTER_NEAREST)
    labels += 1
    labels[labels > len(class_names)] = 0
    panels = [
        ("image", rgb),
        ("tile classes (opacity = probability)", shaded),
        ("refined labels", overlay(rgb, labels, colors)),
    ]
    return panel_figure(panels, class_names, colors, title)


def f1_distribution_figure(f1_by_class: dict[str, Sequence[float]], title: str = "") -> Figure:
    """Box plots (with every value as a dot) of per-class F1 scores over images.

    ``f1_by_class``: class name -> the F1 of that class in each image where it occurs.
    """
    names = [name for name, values in f1_by_class.items() if len(values)]
    fig = Figure(figsize=(2.0 + 0.8 * max(len(names), 1), 4.0), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    if names:
        values = [np.asarray(f1_by_class[name], float) for name in names]
        ax.boxplot(values, tick_labels=names, showfliers=False)
        rng = np.random.default_rng(0)
        for i, v in enumerate(values, start=1):
            ax.plot(i + rng.uniform(-0.12, 0.12, len(v)), v, "o", color="tab:blue", alpha=0.6)
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("F1 per image")
    ax.set_title(title or "per-class F1 over images")
    return fig


def contact_sheet(
    query: np.ndarray, tiles: Sequence[np.ndarray], captions: Sequence[str], title: str = ""
) -> Figure:
    """The ``query`` tile then each of ``tiles`` ((h, w, 3) uint8) with its caption, in rows
    of six."""
    columns = 6
    rows = 1 + -(-len(tiles) // columns)
    fig = Figure(figsize=(2 * columns, 2.2 * rows))
    pictures = [(query, "query"), *zip(tiles, captions, strict=True)]
    for i, (picture, caption) in enumerate(pictures):
        ax = fig.add_subplot(rows, columns, 1 + (0 if i == 0 else columns + i - 1))
        ax.imshow(picture)
        ax.set_title(caption, fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
