"""Colour-coded masks as labels (issue #17, part 4): RGB and palette masks in the colours of
labeldefs.txt are read by retile, fcn make-labels/train and eval-pixels; unlisted colours are
unlabelled, or an error naming the colour and its pixel count with --strict."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dltools.cli import main as dltools_main
from dltools.errors import DltoolsError
from dltools.io.images import read_image, write_image
from dltools.io.label_maps import LabelMap, read_label_map
from dltools.io.labels import Classes, read_classes, write_labeldefs

CLASSES = Classes(
    ["land", "water", "road"], np.array([[132, 41, 246], [226, 169, 41], [110, 193, 228]], np.uint8)
)
GREY = (155, 155, 155)  # a colour of no class: unlabelled


def truth(height: int = 64, width: int = 80) -> np.ndarray:
    """(H, W) int labels: land left, water right, a road across, a grey (-1) corner of 6 x 7."""
    labels = np.ones((height, width), np.int64)
    labels[:, width // 2 :] = 2
    labels[30:36] = 3
    labels[:6, :7] = -1
    return labels


def colour_mask(labels: np.ndarray) -> np.ndarray:
    lut = np.vstack([CLASSES.colors, np.array([GREY], np.uint8)])
    return lut[np.where(labels < 0, 3, labels - 1)]


def write_palette_png(path: Path, labels: np.ndarray) -> None:
    """A palette PNG whose indices are NOT the class values (grey first, then road, land, water)."""
    order = [-1, 3, 1, 2]
    index = np.zeros(labels.shape, np.uint8)
    for i, value in enumerate(order):
        index[labels == value] = i
    image = Image.fromarray(index, mode="P")
    palette = [GREY, *(tuple(CLASSES.colors[v - 1]) for v in order[1:])]
    image.putpalette([c for rgb in palette for c in rgb])
    image.save(path)


@pytest.fixture
def masks(tmp_path: Path) -> Path:
    """images/ (a.jpg, b.jpg) and masks/ (a.png RGB, b.png palette), labeldefs.txt."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    labels = truth()
    for name in ("a", "b"):
        write_image(
            tmp_path / "images" / f"{name}.jpg", rng.integers(0, 255, (64, 80, 3), np.uint8)
        )
    write_image(tmp_path / "masks" / "a.png", colour_mask(labels))
    write_palette_png(tmp_path / "masks" / "b.png", labels)
    write_labeldefs(tmp_path / "labeldefs.txt", CLASSES)
    return tmp_path


def test_rgb_and_palette_masks_decode_by_colour(masks):
    expected = np.maximum(truth(), 0)
    for name in ("a.png", "b.png"):
        np.testing.assert_array_equal(read_label_map(masks / "masks" / name, CLASSES), expected)
    with pytest.raises(DltoolsError, match=r"#9B9B9B \(155, 155, 155\): 42 pixels"):
        read_label_map(masks / "masks" / "b.png", CLASSES, strict=True)
    with pytest.raises(DltoolsError, match=r"#9B9B9B \(155, 155, 155\): 42 pixels"):
        read_label_map(masks / "masks" / "a.png", CLASSES, strict=True)


def test_colour_mask_without_colours_is_an_error_and_palette_is_index_without_them(masks):
    with pytest.raises(DltoolsError, match=r"colour mask .*--labeldefs"):
        LabelMap(masks / "masks" / "a.png", CLASSES.names)
    # without colours a palette PNG is an index raster (value = palette index)
    index = LabelMap(masks / "masks" / "b.png", CLASSES.names)
    assert not index.by_color
    # an index mask with a display palette of none of the class colours: values, not colours
    shown = Image.fromarray(np.maximum(truth(), 0).astype(np.uint8), mode="P")
    shown.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0])
    shown.save(masks / "voc.png")
    np.testing.assert_array_equal(
        read_label_map(masks / "voc.png", CLASSES), np.maximum(truth(), 0)
    )


def test_retile_reads_colour_masks_with_labeldefs(masks):
    args = ["retile", "-i", masks / "images", "--label-dir", masks / "masks", "-t", 16]
    args += ["--stride", 16, "-a", 0.9, "--labeldefs", masks / "labeldefs.txt", "-o", masks]
    assert dltools_main([str(a) for a in args]) == 0
    with open(masks / "tile_16" / "tiles.csv") as f:
        rows = list(csv.DictReader(f))
    counts = {name: sum(r["class"] == name for r in rows) for name in CLASSES.names}
    # per image: 4 x 5 windows of 16 px; the road (rows 30-35) spoils rows 16 and 32, the
    # land/water edge (column 40) the windows of column 32, the grey corner one land window
    assert counts == {"land": 2 * 3, "water": 2 * 4, "road": 0}
    assert dltools_main([str(a) for a in [*args, "--strict", "--force"]]) == 2
    assert dltools_main([str(a) for a in [*args[:-4], "--strict", "-o", masks / "x"]]) == 2


def test_eval_pixels_scores_against_colour_masks(masks, tmp_path):
    preds = tmp_path / "preds"
    preds.mkdir()
    labels = np.maximum(truth(), 0)
    wrong = labels.copy()
    wrong[30:36, :10] = 1  # 60 road pixels called land
    write_image(preds / "a_ares_96.png", labels.astype(np.uint8))
    write_image(preds / "b_ares_96.png", wrong.astype(np.uint8))
    base = ["eval-pixels", "-i", preds, "--true-dir", masks / "masks", "-o", tmp_path]
    base += ["--pred-glob", "*_ares_96.png", "--true-glob", "*.png"]
    args = [*base, "--labeldefs", masks / "labeldefs.txt"]
    assert dltools_main([str(a) for a in args]) == 0
    with open(tmp_path / "pixel_metrics.csv") as f:
        pooled = {r["class"]: r for r in csv.DictReader(f) if r["image"] == "pooled"}
    labelled = 2 * (64 * 80 - 42)
    assert int(pooled["road"]["support"]) == 2 * 6 * 80
    assert sum(int(r["support"]) for r in pooled.values()) == labelled
    assert float(pooled["road"]["recall"]) == pytest.approx(1 - 60 / 960)
    assert dltools_main([str(a) for a in [*args, "--strict", "--force"]]) == 2
    assert dltools_main([str(a) for a in [*base, "--strict", "--force"]]) == 2  # no labeldefs


def test_fcn_make_labels_and_train_strict_read_colour_masks(masks, capsys):
    folder = masks / "flat"
    folder.mkdir()
    write_image(folder / "b.jpg", read_image(masks / "images" / "b.jpg"))
    write_palette_png(folder / "b_mask.png", truth())  # one band: a label beside its image
    args = ["fcn", "make-labels", folder, "--labeldefs", masks / "labeldefs.txt"]
    assert dltools_main([str(a) for a in args]) == 0
    ids = read_image(folder / "b_gtFine_labelIds.png")[..., 0]
    np.testing.assert_array_equal(ids, np.maximum(truth(), 0))
    capsys.readouterr()
    args = ["fcn", "train", "--name", masks / "run", "--data-dir", masks / "images"]
    args += ["--label-dir", masks / "masks", "--labeldefs", masks / "labeldefs.txt", "--strict"]
    assert dltools_main([str(a) for a in [*args, "--encoder-weights", "none"]]) == 2
    assert "#9B9B9B (155, 155, 155): 42 pixels" in capsys.readouterr().err
    assert not (masks / "run").exists()


def test_dubai_masks_rgb_and_palette(shared_dir, tmp_path):
    """Two real masks (an RGB one and a palette one): classes by colour, grey and black
    unlabelled, and --strict names them; retile tiles one image with --labeldefs."""
    dubai = shared_dir / "data" / "dubai"
    classes = read_classes(labeldefs=dubai / "labeldefs.txt")
    for tile in ("tile_1", "tile_2"):
        mask = dubai / tile / "masks" / "image_part_002.png"
        rgb = np.asarray(Image.open(mask).convert("RGB"))
        labels = read_label_map(mask, classes)
        for k, color in enumerate(classes.colors, 1):
            np.testing.assert_array_equal(labels == k, (rgb == color).all(axis=2))
        assert (labels == 0).sum() == (rgb == 155).all(axis=2).sum() > 0
        with pytest.raises(DltoolsError, match=r"#9B9B9B \(155, 155, 155\): \d+ pixels"):
            read_label_map(mask, classes, strict=True)
    folder = tmp_path / "one"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for part in ("images", "masks"):
        source = next((dubai / "tile_2" / part).glob("image_part_002.*"))
        (folder / part / source.name).symlink_to(source)
    args = ["retile", "-i", folder / "images", "--label-dir", folder / "masks", "-t", 96]
    args += ["--labeldefs", dubai / "labeldefs.txt", "-o", folder]
    assert dltools_main([str(a) for a in args]) == 0
    with open(folder / "tile_96" / "tiles.csv") as f:
        found = {r["class"] for r in csv.DictReader(f)}
    assert found and found <= set(classes.names)
