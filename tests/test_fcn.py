"""Step 8: fully convolutional segmentation (pipeline.fcn, models.unet, dltools fcn)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from gis_checks import assert_cog, assert_styled_classes, assert_vector_matches

from dltools.cli import main as dltools_main
from dltools.errors import DltoolsError
from dltools.io.discovery import find_labelled_images, original_layout, split_pairs
from dltools.io.geo import read_nodata_mask, read_profile, read_raster
from dltools.io.images import read_image, write_image
from dltools.io.label_maps import decode_colors, read_label_map
from dltools.io.labels import Classes, read_classes, read_labeldefs, read_labels
from dltools.io.results import LabelResult, read_result, write_result
from dltools.pipeline.fcn import (
    IGNORE,
    STRIDE,
    Augmentation,
    LabelledImage,
    Tiling,
    TrainSettings,
    infer_file,
    load_labelled,
    load_run,
    load_runs,
    output_paths,
    predict_image,
    probability_blocks,
    random_crop,
    with_flips,
)
from dltools.raster.windows import blend_blocks, blend_weights, covering_windows

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"
WEIGHTS = "models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def run_cli(*args: str) -> int:
    return dltools_main(["fcn", *map(str, args)])


# --- blending ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "size", "step"),
    [(1000, 256, 192), (100, 128, 128), (700, 512, 384), (1100, 512, 256)],
)
def test_blend_weights_sum_to_one_and_ignore_window_edges(length, size, step):
    starts = covering_windows(length, size, step)
    weights = blend_weights(length, size, step)
    assert starts[0] == 0 and starts[-1] < length <= starts[-1] + size
    total = np.zeros(starts[-1] + size)
    for start, weight in zip(starts, weights, strict=True):
        total[start : start + size] += weight
    np.testing.assert_allclose(total[:length], 1, atol=1e-6)
    assert not total[length:].any()
    quarter = (size - step) // 4  # the outer quarter of each overlap does not count
    for i in range(1, len(starts)):
        assert not weights[i, :quarter].any() and not weights[i - 1, size - quarter :].any()


@pytest.mark.parametrize("max_width", [None, 200, 96])
def test_blend_blocks_rebuild_a_map_chunk_by_chunk(max_width):
    rng = np.random.default_rng(0)
    truth = rng.random((301, 467, 3)).astype(np.float32)
    padded = np.pad(truth, ((0, 200), (0, 200), (0, 0)))
    calls = []

    def windows(row, cols):
        calls.append(len(cols))
        for col in cols:
            yield padded[row : row + 96, col : col + 128]

    rebuilt = np.full(truth.shape, np.nan, np.float32)
    corners = []
    for row, col, block in blend_blocks(truth.shape[:2], (96, 128), (64, 96), windows, max_width):
        assert np.isnan(rebuilt[row : row + block.shape[0], col : col + block.shape[1]]).all()
        rebuilt[row : row + block.shape[0], col : col + block.shape[1]] = block
        corners.append((row, col))
    np.testing.assert_allclose(rebuilt, truth, atol=1e-6)
    assert [row for row, col in corners if col == 0] == list(range(0, 301, 64))
    chunks = len({col for _, col in corners})
    assert chunks == {None: 1, 200: 3, 96: 5}[max_width]
    assert sum(calls) == 5 * (5 + chunks - 1)  # a window straddling two chunks is done twice


def pixelwise(x: np.ndarray) -> np.ndarray:
    """A 'network' without context: softmax of a fixed linear map of each pixel's colour."""
    logits = x @ np.array([[0.03, -0.02], [-0.01, 0.02], [0.0, 0.01]], np.float32)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_windows_blend_to_the_whole_image_result_for_a_model_without_context():
    image = read_image(DEMO / "images" / "coast_02.jpg")[:300, :500]
    whole = pixelwise(image.astype(np.float32))
    for tiling in (Tiling(128, 32), Tiling(256, 64, batch_size=3, max_width=200), Tiling(512, 0)):
        np.testing.assert_allclose(predict_image(image, pixelwise, tiling), whole, atol=1e-5)
    np.testing.assert_allclose(with_flips(pixelwise)(image[None] * 1.0)[0], whole, atol=1e-5)
    reads = []  # the image is read one window row (of one column chunk) at a time

    def read(r0, r1, c0, c1):
        reads.append((r0, r1, c0, c1))
        return image[r0:r1, c0:c1]

    blocks = probability_blocks(read, image.shape[:2], pixelwise, Tiling(128, 32, max_width=256))
    shapes = [(row, col, block.shape) for row, col, block in blocks]
    # column chunks of 2 windows (192 px), plus the window straddling the chunk boundary
    columns = [(0, 224), (96, 416), (288, 500)]
    rows = [(0, 128), (96, 224), (192, 300)]
    assert reads == [(r0, r1, c0, c1) for c0, c1 in columns for r0, r1 in rows]
    assert shapes[:4] == [
        (0, 0, (96, 192, 2)),
        (96, 0, (96, 192, 2)),
        (192, 0, (108, 192, 2)),
        (0, 192, (96, 192, 2)),
    ]


def test_tiling_options_are_checked():
    with pytest.raises(DltoolsError, match="multiples of 32"):
        Tiling(500, 100)
    with pytest.raises(DltoolsError, match="overlap"):
        Tiling(256, 160)
    assert Tiling().axis(300) == (320, 320) and Tiling(512, 128).axis(3000) == (512, 384)


# --- labels and pairing --------------------------------------------------------------------


def demo_classes() -> Classes:
    return Classes(*read_labeldefs(DEMO / "labeldefs.txt"))


def test_colour_labels_decode_by_colour_and_unknown_colours_are_unlabelled():
    classes = demo_classes()
    labels = read_image(DEMO / "labels" / "coast_03_label.png")[..., 0]
    rgb = np.vstack([np.zeros((1, 3), np.uint8), classes.colors])[labels]
    rgb[:5, :5] = (1, 2, 3)
    expected = labels.copy()
    expected[:5, :5] = 0
    np.testing.assert_array_equal(decode_colors(rgb, classes.colors), expected)
    with pytest.raises(DltoolsError, match="share a colour"):
        decode_colors(rgb, np.array([[1, 2, 3], [1, 2, 3]], np.uint8))


def test_make_labels_colours_classes_by_name_not_by_index(tmp_path):
    classes = demo_classes()
    truth = read_image(DEMO / "labels" / "coast_04_label.png")[..., 0].astype(int) - 1
    shuffled = classes.names[::-1]  # the .mat lists its classes in another order
    class_map = np.where(truth < 0, -1, len(shuffled) - 1 - truth)
    write_result(tmp_path / "coast_04_mres.mat", LabelResult(class_map, shuffled))
    assert run_cli("make-labels", tmp_path, "--labeldefs", DEMO / "labeldefs.txt") == 0
    color = read_image(tmp_path / "coast_04_gtFine_color.png")
    ids = read_image(tmp_path / "coast_04_gtFine_labelIds.png")[..., 0]
    np.testing.assert_array_equal(ids, truth + 1)
    lut = np.vstack([np.zeros((1, 3), np.uint8), classes.colors])
    np.testing.assert_array_equal(color, lut[truth + 1])
    assert run_cli("make-labels", tmp_path, "--labeldefs", DEMO / "labeldefs.txt") == 2
    # the colour image and the index image read back as the same labels
    for name in ("coast_04_gtFine_color.png", "coast_04_gtFine_labelIds.png"):
        np.testing.assert_array_equal(read_label_map(tmp_path / name, classes), truth + 1)


def test_make_labels_fixes_the_swapped_colours_of_the_original_tool(shared_dir, tmp_path):
    """The original painted class k of each .mat in the k-th labeldefs colour: this file lists
    dune and drysand in other places than labeldefs.txt, so their colours were swapped."""
    gt = shared_dir / "data" / "dltools_formats" / "gt"
    os.symlink(gt / "D800_20160308_221825-0_mres.mat", tmp_path / "D800_20160308_221825-0_mres.mat")
    labeldefs = shared_dir / "data" / "dltools_formats" / "labels" / "labeldefs.txt"
    assert (
        run_cli("make-labels", tmp_path, "--labeldefs", labeldefs, "--out-dir", tmp_path / "o") == 0
    )
    names, colors = read_labeldefs(labeldefs)
    ours = read_image(tmp_path / "o" / "D800_20160308_221825-0_gtFine_color.png")
    original = read_image(gt / "D800_20160308_221825-0_gtFine_color.png")
    labels = read_image(tmp_path / "o" / "D800_20160308_221825-0_gtFine_labelIds.png")[..., 0]
    dune, drysand = names.index("dune") + 1, names.index("drysand") + 1
    for k, swapped in ((dune, drysand), (drysand, dune)):
        where = labels[::4, ::4] == k
        assert where.sum() > 1000
        assert np.all(ours[::4, ::4][where] == colors[k - 1])
        assert np.mean(np.all(original[::4, ::4][where] == colors[swapped - 1], axis=1)) > 0.9
    others = ~np.isin(labels[::4, ::4], [0, dune, drysand])
    assert np.mean(np.all(ours[::4, ::4][others] == original[::4, ::4][others], axis=1)) > 0.9


def test_pairing_prefers_mat_then_index_raster_then_colour_image(tmp_path):
    classes = demo_classes()
    truth = read_image(DEMO / "labels" / "coast_05_label.png")[..., 0]
    image = read_image(DEMO / "images" / "coast_05.jpg")
    root = tmp_path / "data"
    for split in ("train", "val"):
        folder = root / "samples" / "RGB" / split / "data"
        labels = root / "labels" / "gtFine" / split / "data"
        folder.mkdir(parents=True)
        labels.mkdir(parents=True)
        write_image(folder / f"coast_05_{split}_RGB.png", image)  # the original naming
        lut = np.vstack([np.zeros((1, 3), np.uint8), classes.colors])
        write_image(labels / f"coast_05_{split}_gtFine_color.png", lut[truth])
    swapped = np.where(truth == 1, 2, np.where(truth == 2, 1, truth))
    write_image(root / "labels/gtFine/train/data/coast_05_train_gtFine_labelIds.png", swapped)
    layout = original_layout(root)
    assert [p[1].name for p in layout["train"]] == ["coast_05_train_gtFine_labelIds.png"]
    assert [p[1].name for p in layout["val"]] == ["coast_05_val_gtFine_color.png"]
    (val,) = load_labelled(layout["val"], classes)
    np.testing.assert_array_equal(val.labels, truth)
    write_result(
        root / "labels/gtFine/train/data/coast_05_train_mres.mat",
        LabelResult(truth.astype(np.int16) - 1, classes.names),
    )
    assert [p[1].name for p in original_layout(root)["train"]] == ["coast_05_train_mres.mat"]
    assert original_layout(tmp_path) is None


def test_plain_folder_pairs_label_rasters_and_holds_out_whole_images(shared_dir):
    pairs, unlabelled = find_labelled_images(shared_dir / "data" / "stmarg" / "train")
    assert len(pairs) == 10 and not unlabelled
    assert all(label.name == f"SCLS_StMarg{image.stem[7:]}.tif" for image, label in pairs)
    train, val = split_pairs(pairs, 0.2, seed=3)
    assert len(val) == 2 and sorted(train + val) == sorted(pairs)
    assert split_pairs(pairs, 0.2, seed=3) == (train, val)
    pairs, _ = find_labelled_images(DEMO / "images", DEMO / "labels")
    assert len(pairs) == 8 and pairs[0][1].name == "coast_01_label.png"


# --- training data -------------------------------------------------------------------------


def demo_images(n: int = 3) -> list[LabelledImage]:
    pairs, _ = find_labelled_images(DEMO / "images", DEMO / "labels")
    return load_labelled(pairs[:n], demo_classes())


def test_crops_are_class_balanced_and_hold_labelled_pixels():
    images = demo_images()
    rng = np.random.default_rng(0)
    balanced, uniform = np.zeros(6), np.zeros(6)  # labelled pixels of each class
    for _ in range(300):
        image, labels = random_crop(rng, images, 64)
        assert image.shape == (64, 64, 3) and labels.shape == (64, 64)
        assert labels.min() >= IGNORE and (labels >= 0).any()
        balanced += np.bincount(labels[labels >= 0], minlength=6)
        _, labels = random_crop(rng, images, 64, balanced=False)
        uniform += np.bincount(labels[labels >= 0], minlength=6)
    balanced, uniform = balanced / balanced.sum(), uniform / uniform.sum()
    rare = np.argmin(uniform)  # the rarest class (foam) fills far more of the balanced crops
    assert balanced[rare] > 2 * uniform[rare] and balanced.max() < uniform.max()


def test_training_on_strokes_sees_only_the_stroked_pixels(tmp_path):
    """``--train-on strokes``: the labels of a _mres.mat are its strokes (2% of the pixels,
    thin), every crop holds stroked pixels of its class and nothing else is labelled; a label
    raster has no strokes and is refused."""
    from dltools.synthetic.scenes import simulate_strokes

    pairs, _ = find_labelled_images(DEMO / "images", DEMO / "labels")
    classes = demo_classes()
    image_path, label_path = pairs[0]
    dense = read_label_map(label_path, classes)
    strokes = simulate_strokes(dense, fraction=0.02, width=3, margin=5, seed=0)
    os.symlink(image_path, tmp_path / image_path.name)
    mat = tmp_path / f"{image_path.stem}_mres.mat"
    write_result(mat, LabelResult(dense.astype(np.int16) - 1, classes.names, strokes))
    (loaded,) = load_labelled([(tmp_path / image_path.name, mat)], classes, strokes=True)
    np.testing.assert_array_equal(loaded.labels, strokes)
    assert 0.01 < np.count_nonzero(loaded.labels) / loaded.labels.size < 0.03
    for k, anchors in enumerate(loaded.anchors, 1):  # every stroked pixel anchors crops
        assert len(anchors) == np.count_nonzero(strokes == k)
    rng = np.random.default_rng(0)
    for _ in range(50):
        _, labels = random_crop(rng, [loaded], 64)
        assert (labels >= 0).any()
    (full,) = load_labelled([(tmp_path / image_path.name, mat)], classes)
    np.testing.assert_array_equal(full.labels, dense)  # the default: the dense labels
    pair = [(tmp_path / image_path.name, mat)]
    (both,) = load_labelled(pair, classes, strokes=True, second=True)  # CRF labels: K + k
    n = len(classes.names)
    expected = np.where((strokes == 0) & (dense > 0), dense.astype(np.int64) + n, strokes)
    np.testing.assert_array_equal(both.labels, expected)
    assert [len(a) for a in both.anchors] == [len(a) for a in loaded.anchors]
    with pytest.raises(DltoolsError, match="--crf-weight"):
        TrainSettings(crf_weight=0.3)  # a second target needs --train-on strokes
    with pytest.raises(DltoolsError, match="strokes come from <name>_mres"):
        load_labelled(pairs[:1], classes, strokes=True)


def test_augmentation_keeps_image_and_labels_aligned():
    images = demo_images(1)
    rng = np.random.default_rng(1)
    image, labels = random_crop(rng, images, 256)
    flips = Augmentation(flips=True, jitter=0.0)
    seen = set()
    for _ in range(20):
        x, y = flips(rng, image, labels)
        seen.add(x.tobytes())
        # each pixel keeps its label: the (image, labels) pair is one of the four flips
        pair = [(image, labels), (image[:, ::-1], labels[:, ::-1]), (image[::-1], labels[::-1])]
        pair.append((image[::-1, ::-1], labels[::-1, ::-1]))
        assert any(np.array_equal(x, a) and np.array_equal(y, b) for a, b in pair)
    assert len(seen) == 4
    x, y = Augmentation(flips=False, jitter=0.3)(rng, image, labels)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
    assert not np.allclose(x, image) and np.array_equal(y, labels)


# --- network -------------------------------------------------------------------------------


def test_loss_ignores_unlabelled_pixels_and_weights_classes():
    from dltools.models.unet import STRIDE as NETWORK_STRIDE
    from dltools.models.unet import MaskedCrossEntropy, class_weights

    assert NETWORK_STRIDE == STRIDE
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=(2, 8, 8)).astype(np.float32)
    labels = rng.integers(-1, 3, size=(2, 8, 8))
    weights = np.array([1.0, 3.0, 0.5], np.float32)
    loss = MaskedCrossEntropy(weights.tolist())
    value = float(loss(labels, probs))
    other = probs.copy()
    other[labels < 0] = rng.dirichlet(np.ones(3), size=int((labels < 0).sum()))
    assert float(loss(labels, other)) == pytest.approx(value, rel=1e-6)
    kept = labels >= 0
    picked = probs[kept][np.arange(kept.sum()), labels[kept]]
    w = weights[labels[kept]]
    assert value == pytest.approx(float((w * -np.log(picked)).sum() / w.sum()), rel=1e-5)
    assert float(loss(np.full((1, 8, 8), IGNORE), probs[:1])) == 0.0
    # labels K..2K-1: the second target, class y - K, weighed second_weight more
    second = np.where(rng.random(labels.shape) < 0.5, labels + 3, labels)
    second[labels < 0] = IGNORE
    both = MaskedCrossEntropy(weights.tolist(), second_weight=0.25)
    is_second = second[kept] >= 3
    w = weights[labels[kept]] * np.where(is_second, 0.25, 1.0)
    expected = (w * -np.log(picked)).sum() / w.sum()
    assert float(both(second, probs)) == pytest.approx(float(expected), rel=1e-5)
    assert MaskedCrossEntropy.from_config(both.get_config()).second_weight == 0.25

    w = class_weights([9000, 1000, 0])
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == 0
    assert (w * [9000, 1000, 0]).sum() / 10000 == pytest.approx(1)
    np.testing.assert_allclose(class_weights([9000, 1000], power=0), 1)


def test_encoder_weights_are_never_downloaded(tmp_path):
    args = ["train", "--name", tmp_path / "run", "--data-dir", DEMO / "images"]
    args += ["--label-dir", DEMO / "labels", "-l", DEMO / "labels.txt"]
    assert run_cli(*args, "--encoder-weights", "imagenet") == 2
    assert run_cli(*args, "--encoder-weights", tmp_path / "missing.h5") == 2
    assert run_cli(*args) == 2
    assert not (tmp_path / "run").exists()


def test_encoder_weights_of_another_width_are_refused(shared_dir):
    from dltools.models.unet import build_fcn

    with pytest.raises(DltoolsError, match=r"width 0\.5"):
        build_fcn(3, shared_dir / WEIGHTS, alpha=0.5)


# --- a small trained run -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run trained from scratch on the demo photos (2 epochs of 4 batches)."""
    run = tmp_path_factory.mktemp("fcn") / "run"
    args = ["train", "--name", run, "--data-dir", DEMO / "images", "--label-dir", DEMO / "labels"]
    args += ["--labeldefs", DEMO / "labeldefs.txt", "--encoder-weights", "none", "--alpha", "0.35"]
    args += ["--tile-size", "128", "--batch-size", "4", "--epochs", "2", "--steps-per-epoch", "4"]
    assert run_cli(*args, "--val-crops", "2") == 0
    return run


def summary_tags(folder: Path) -> set[str]:
    import tensorflow as tf

    tags = set()
    for path in folder.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags |= {value.tag for value in event.summary.value}
    return tags


def test_training_writes_a_complete_run_folder(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["epochs_done"] == 2 and len(config["history"]) == 2
    assert len(config["data"]["train"]) == 7 and len(config["data"]["val"]) == 1
    names = read_labels(DEMO / "labels.txt")
    assert read_labeldefs(trained / "labeldefs.txt")[0] == names == config["classes"]
    for record in config["history"]:
        assert {f"val_iou_{n}" for n in names} | {"loss", "val_mean_iou"} <= set(record)
    best = max(config["history"], key=lambda r: r["val_mean_iou"])
    assert config["best_epoch"] == best["epoch"]
    assert {"epoch_loss"} <= summary_tags(trained / "logs" / "train")
    assert {"epoch_loss", "epoch_mean_iou", "epoch_iou_foam"} <= summary_tags(
        trained / "logs" / "validation"
    )
    assert "map" in summary_tags(trained / "logs" / "map")  # the map of a validation image
    run = load_run(trained)
    assert run.classes.names == names


def test_training_refuses_to_overwrite_and_resumes(trained, tmp_path):
    args = ["train", "--name", trained, "--data-dir", DEMO / "images", "--encoder-weights", "none"]
    assert run_cli(*args, "--label-dir", DEMO / "labels", "-l", DEMO / "labels.txt") == 2
    before = (trained / "model.keras").stat().st_mtime_ns
    assert run_cli("train", "--name", trained, "--resume", "--epochs", "2") == 2  # nothing to do
    assert run_cli("train", "--name", trained, "--resume", "--epochs", "3") == 0
    config = json.loads((trained / "config.json").read_text())
    assert config["epochs_done"] == 3 and [r["epoch"] for r in config["history"]] == [1, 2, 3]
    assert config["settings"]["tile_size"] == 128  # the run's own settings
    if config["best_epoch"] != 3:
        assert (trained / "model.keras").stat().st_mtime_ns == before


def test_infer_geotiff_keeps_the_grid_and_streams_by_bands(trained, tmp_path):
    ortho = DEMO / "geotiff" / "coast_ortho.tif"
    out = tmp_path / "out"
    args = ["infer", "--name", trained, "--samples-dir", ortho, "--output-dir", out]
    assert run_cli(*args, "--window", "256", "--overlap", "64", "--vector") == 0
    label, overlay = out / "coast_ortho_fcn_label.tif", out / "coast_ortho_fcn_overlay.tif"
    source, written = read_profile(ortho), read_profile(label)
    assert written["crs"] == source["crs"] and written["transform"] == source["transform"]
    assert (written["width"], written["height"], written["count"]) == (900, 900, 1)
    assert written["nodata"] == 0 and written["dtype"] == "uint8"
    values = read_raster(label)[..., 0]
    nodata = read_nodata_mask(ortho)
    assert nodata.any() and not values[nodata].any() and values[~nodata].min() >= 1
    assert values.max() <= 6 and len(np.unique(values)) >= 3
    assert read_profile(overlay)["count"] == 3 and read_profile(overlay)["crs"] == source["crs"]
    assert_cog(label)
    assert_styled_classes(label, read_classes(labeldefs=DEMO / "labeldefs.txt"))
    assert_vector_matches(out / "coast_ortho_fcn_label.gpkg", label)
    # streaming bands of rows from disk gives what the whole image in memory gives
    run = load_run(trained)
    tiling = Tiling(256, 64)
    probs = predict_image(read_image(ortho), run.predictor(), tiling)
    np.testing.assert_array_equal(values[~nodata], probs.argmax(axis=2)[~nodata] + 1)
    assert run_cli(*args) == 2  # outputs exist
    small = Tiling(128, 32, batch_size=2)
    again = output_paths(ortho, tmp_path / "again", overlays=False)
    counts = infer_file(run, ortho, again, small)
    assert counts[0] == nodata.sum() and counts.sum() == 900 * 900
    assert not again.overlay and not (tmp_path / "again" / "coast_ortho_fcn_overlay.tif").exists()


def test_infer_photo_writes_png_labels_mat_and_overlay(trained, tmp_path):
    photo = DEMO / "images" / "coast_06.jpg"
    args = ["infer", "--name", trained, "--samples-dir", photo, "--output-dir", tmp_path]
    assert run_cli(*args) == 0
    label = read_image(tmp_path / "coast_06_fcn_label.png")[..., 0]
    # the default averages the four flips (TTA); --no-tta is the plain network
    assert run_cli(*args[:-1], tmp_path / "plain", "--no-tta") == 0
    plain = read_image(tmp_path / "plain" / "coast_06_fcn_label.png")[..., 0]
    run = load_run(trained)
    for labels, tiling in ((label, Tiling()), (plain, Tiling(tta=False))):
        probs = predict_image(read_image(photo), run.predictor(), tiling)
        np.testing.assert_array_equal(labels, probs.argmax(axis=2) + 1)
    assert Tiling().tta and np.any(label != plain)
    result = read_result(tmp_path / "coast_06_ares_fcn.mat")
    assert result.labels == read_labels(DEMO / "labels.txt")
    np.testing.assert_array_equal(result.class_map + 1, label)
    assert label.min() >= 1 and read_image(tmp_path / "coast_06_fcn_overlay.png").shape == (
        512,
        768,
        3,
    )
    crf = ["infer-crf", "--name", trained, "--samples-dir", photo, "--output-dir", tmp_path]
    assert run_cli(*crf, "--workers", "1") == 0
    refined = read_image(tmp_path / "coast_06_fcn_crf_label.png")[..., 0]
    assert refined.min() >= 1 and np.mean(refined == label) > 0.6
    assert read_result(tmp_path / "coast_06_ares_fcn_crf.mat").labels == result.labels


def test_an_ensemble_averages_its_runs_and_refuses_runs_of_other_classes(trained, tmp_path):
    other = tmp_path / "seed1"
    args = ["train", "--name", other, "--data-dir", DEMO / "images", "--label-dir", DEMO / "labels"]
    args += ["--labeldefs", DEMO / "labeldefs.txt", "--encoder-weights", "none", "--alpha", "0.35"]
    args += ["--tile-size", "128", "--batch-size", "4", "--epochs", "1", "--steps-per-epoch", "4"]
    assert run_cli(*args, "--val-crops", "2", "--seed", "1") == 0
    photo = DEMO / "images" / "coast_06.jpg"
    out = tmp_path / "out"
    infer = ["infer", "--samples-dir", photo, "--output-dir", out, "--no-tta"]
    assert run_cli(*infer, "--name", trained, other) == 0
    label = read_image(out / "coast_06_fcn_label.png")[..., 0]
    image, tiling = read_image(photo), Tiling(tta=False)
    probs = [predict_image(image, load_run(run).predictor(), tiling) for run in (trained, other)]
    np.testing.assert_array_equal(label, (probs[0] + probs[1]).argmax(axis=2) + 1)
    assert all(np.any(label != p.argmax(axis=2) + 1) for p in probs)  # neither run alone
    # a run whose classes are in another order is refused before anything is written
    swapped = tmp_path / "swapped"
    shutil.copytree(trained, swapped)
    lines = (trained / "labeldefs.txt").read_text().splitlines()
    (swapped / "labeldefs.txt").write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    assert run_cli(*infer[:4], tmp_path / "refused", "--name", trained, swapped) == 2
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
    with pytest.raises(DltoolsError, match=r"swapped: its classes .* differ"):
        load_runs([trained, swapped])


def test_infer_crf_of_a_raster_in_windows_agrees_with_one_piece(trained, tmp_path, monkeypatch):
    """The demo GeoTIFF (900 px) with --block 320: 3 x 3 windows, each segmented and refined
    with 192 px of context (twice theta 20 and a working pixel at scale 0.25, the median
    filter's 5 px, rounded up to 32 px; the network's overlap is less), so no bigger than
    704 px, against the CRF over the whole image: the same grid and nodata, the same label
    almost everywhere, the uncertainty's windows ranked alike."""
    import dltools.engines.crf as crf

    ortho = DEMO / "geotiff" / "coast_ortho.tif"
    args = ["infer-crf", "--name", trained, "--samples-dir", ortho, "--window", "256"]
    args += ["--overlap", "64", "--theta", "20", "--no-overlay", "--no-tta", "--uncertainty"]
    assert run_cli(*args, "--output-dir", tmp_path / "whole") == 0
    refined, label_from_probs = [], crf.label_from_probs
    monkeypatch.setattr(
        crf,
        "label_from_probs",
        lambda image, *rest: refined.append(image.shape[:2]) or label_from_probs(image, *rest),
    )
    assert run_cli(*args, "--output-dir", tmp_path / "windows", "--block", "320") == 0
    assert len(refined) == 9 and max(max(shape) for shape in refined) == 704
    name = "coast_ortho_fcn_crf_label.tif"
    label = tmp_path / "windows" / name
    source, written = read_profile(ortho), read_profile(label)
    assert written["crs"] == source["crs"] and written["transform"] == source["transform"]
    assert_cog(label)
    whole, windows = read_raster(tmp_path / "whole" / name)[..., 0], read_raster(label)[..., 0]
    nodata = read_nodata_mask(ortho)
    assert not windows[nodata].any() and windows[~nodata].min() >= 1
    assert np.mean(windows[~nodata] == whole[~nodata]) > 0.98
    # the windows' tallies add up to the ranking of the uncertainty raster they wrote
    uncertainty = read_raster(tmp_path / "windows" / "coast_ortho_fcn_crf_uncertainty.tif")
    assert np.isnan(uncertainty[nodata]).all() and np.isfinite(uncertainty[~nodata]).all()
    ranked = list(csv.DictReader((tmp_path / "windows" / "coast_ortho_fcn_crf_next.csv").open()))
    assert len(ranked) == 4  # 512-px windows, the last ones aligned with the edges
    for window in ranked:
        row, col = int(window["row"]), int(window["col"])
        mean = np.nanmean(uncertainty[row : row + 512, col : col + 512])
        assert float(window["mean_uncertainty"]) == pytest.approx(mean, abs=6e-5)


def test_tiled_inference_equals_whole_image_inference_away_from_the_borders(trained):
    """The default windows (1024 px, 256 overlap) against one pass over the whole image."""
    run = load_run(trained)
    image = read_raster(DEMO / "geotiff" / "coast_ortho.tif")
    whole = predict_image(image, run.predictor(), Tiling(window=1024))  # one window
    tiled = predict_image(image, run.predictor(), Tiling(window=384, overlap=128))
    inner = (slice(128, -128), slice(128, -128))
    agree = np.mean(whole.argmax(axis=2)[inner] == tiled.argmax(axis=2)[inner])
    difference = np.abs(whole - tiled).max(axis=2)[inner]
    assert agree > 0.99 and difference.mean() < 0.01


def test_input_bands_are_checked(trained, tmp_path):
    path = tmp_path / "sixteen.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint16"
    ) as d:
        d.write(np.zeros((3, 64, 64), np.uint16))
    args = ["infer", "--name", trained, "--samples-dir", path, "--output-dir", tmp_path / "o"]
    assert run_cli(*args) == 2
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_an_rgba_image_is_refused_or_segmented_as_its_rgb_original(trained, tmp_path, capsys):
    config = json.loads((trained / "config.json").read_text())
    assert config["bands"] == {"bands": [1, 2, 3], "count": 3, "dtype": "uint8", "ranges": None}
    rgb = read_image(DEMO / "images" / "coast_06.jpg")
    rgba = tmp_path / "rgba" / "coast_06.png"
    write_image(rgba, np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], 2))
    base = ["infer", "--name", trained, "--no-overlay", "--samples-dir"]
    assert run_cli(*base, rgba, "--output-dir", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "coast_06.png has 4 band(s)" in err and "bands 1,2,3" in err and "--bands" in err
    assert not (tmp_path / "o").exists()
    assert run_cli(*base, rgba, "--output-dir", tmp_path / "o", "--bands", "1,2,3") == 0
    photo = DEMO / "images" / "coast_06.jpg"
    assert run_cli(*base, photo, "--output-dir", tmp_path / "rgb") == 0
    np.testing.assert_array_equal(
        read_image(tmp_path / "o" / "coast_06_fcn_label.png"),
        read_image(tmp_path / "rgb" / "coast_06_fcn_label.png"),
    )


def test_infer_over_a_folder_keeps_going_and_skips_finished_images(trained, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((DEMO / "images" / "coast_06.jpg").read_bytes())
    data = (DEMO / "images" / "coast_07.jpg").read_bytes()
    (folder / "b.jpg").write_bytes(data[: len(data) // 2])
    args = ["infer", "--name", trained, "--samples-dir", folder, "--output-dir", tmp_path / "o"]
    args += ["--no-overlay", "--keep-going"]
    assert run_cli(*args) == 2
    assert "1 of 2 failed" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "a_ares_fcn.mat",
        "a_fcn_label.png",
    ]
    assert run_cli(*args, "--skip-existing") == 2
    assert "a.jpg: outputs exist, skipped" in capsys.readouterr().out


def test_uncertainty_streams_in_parts_as_the_whole_image_gives_it(trained, tmp_path, capsys):
    """``--uncertainty`` on the orthomosaic made in 9 parts: the uncertainty raster (a COG on
    the input's grid, NaN at nodata) is the margin of the blended probabilities of one pass,
    and the windows ranked part by part are those ranked over the whole raster; photos get a
    PNG and the run ranks them for labelling."""
    from dltools.engines.uncertainty import rank_windows, uncertainty_map

    ortho = DEMO / "geotiff" / "coast_ortho.tif"
    out = tmp_path / "out"
    args = ["infer", "--name", trained, "--samples-dir", ortho, "--output-dir", out]
    args += ["--window", "256", "--overlap", "64", "--no-overlay", "--block", "384"]
    assert run_cli(*args, "--uncertainty") == 0
    written = out / "coast_ortho_fcn_uncertainty.tif"
    assert_cog(written)
    assert read_profile(written)["transform"] == read_profile(ortho)["transform"]
    values = read_raster(written)[..., 0]
    run = load_run(trained)
    probabilities = predict_image(read_image(ortho), run.predictor(), Tiling(256, 64))
    nodata = read_nodata_mask(ortho)
    probabilities[nodata] = 0
    expected = uncertainty_map(probabilities)
    assert np.isnan(values[nodata]).all() and np.isfinite(values[~nodata]).all()
    np.testing.assert_allclose(values[~nodata], expected[~nodata], atol=1e-5)
    ranked = rank_windows(expected, probabilities, 512)
    with open(out / "coast_ortho_fcn_next.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["row"]), int(r["col"])) for r in rows] == [(w.row, w.col) for w in ranked]
    names = run.classes.names
    assert [r["doubt"] for r in rows] == [" / ".join(names[k] for k in w.doubt) for w in ranked]
    assert (out / "coast_ortho_fcn_next.geojson").is_file()
    photos = ["--samples-dir", DEMO / "images", "--output-dir", tmp_path / "photos"]
    assert run_cli("infer", "--name", trained, *photos, "--no-overlay", "--uncertainty") == 0
    png = read_image(tmp_path / "photos" / "coast_06_fcn_uncertainty.png")
    assert png.dtype == np.uint8 and png.shape[:2] == (512, 768) and png.max() > 0
    lines = (tmp_path / "photos" / "uncertainty_ranking_fcn.csv").read_text().splitlines()
    assert len(lines) == 1 + 8 and "label next (most uncertain first)" in capsys.readouterr().out
