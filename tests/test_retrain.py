"""Step 4: retraining (dltools.models: hub, bottlenecks, classifier, loader; dltools retrain).

The evidence on real imagery (steps 3-5 on the St Margaret's river frames with the shared
MobileNetV2 module) is in test_eval_tiles.py; here: the parts, the scratch CNN end to end on
the demo tiles, and bad inputs.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import dltools.models.bottlenecks as bottlenecks_module
from dltools.cli import main as dltools_main
from dltools.errors import DltoolsError
from dltools.io.discovery import find_labelled_images
from dltools.io.images import list_images, read_image, write_image
from dltools.io.labels import read_labels
from dltools.io.tile_library import read_band_choice, source_image
from dltools.models.bottlenecks import BottleneckCache, compute_bottlenecks
from dltools.models.classifier import Augmentation, split_by_group, split_by_name
from dltools.models.hub import (
    declared_image_size,
    feature_layer,
    module_key,
    resolve_module,
    top_layer_variables,
)
from dltools.models.loader import load_model, save_model
from dltools.models.metadata import model_tile_size
from dltools.pipeline.retile import retile
from dltools.raster.bands import RGB8

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"
FINAL_LINE = re.compile(r"^Final test accuracy = (\d+\.\d)% \(N=(\d+)\)$")


@pytest.fixture(scope="module")
def demo_tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48-px class tiles of the eight demo photos (labels from demo_data/labels)."""
    out = tmp_path_factory.mktemp("demo_tiles")
    pairs, _ = find_labelled_images(DEMO / "images", DEMO / "labels")
    names = read_labels(DEMO / "labels.txt")
    return retile(pairs, out, size=48, min_purity=0.9, stride=48, class_names=names).folder


def test_split_by_name_is_stable_and_near_the_percentages() -> None:
    names = [f"tile_{i}.jpg" for i in range(20000)]
    split = split_by_name(names, 10, 20)
    fractions = np.bincount(split, minlength=3) / len(names)
    np.testing.assert_allclose(fractions, [0.7, 0.1, 0.2], atol=0.01)
    more = split_by_name([*names, *(f"new_{i}.jpg" for i in range(500))], 10, 20)
    np.testing.assert_array_equal(more[: len(names)], split)  # adding files moves none
    grouped = split_by_name([f"x{i}_nohash_{j}.jpg" for i in range(50) for j in range(3)], 30, 30)
    assert all(len(set(grouped[3 * i : 3 * i + 3])) == 1 for i in range(50))


def test_split_by_group_keeps_images_whole_and_every_class_in_training() -> None:
    assert source_image("StMarg_26818_96_1056.jpg") == "StMarg_26818"
    assert source_image("water_3.jpg") == "water_3.jpg"  # not made by retile: its own source
    groups = np.repeat([f"frame_{g}" for g in range(12)], 50)
    labels = np.zeros(len(groups), int)
    labels[(groups == "frame_0") | (groups == "frame_7")] = 1  # the rare class: 2 frames
    labels[groups == "frame_0"] = 2  # and a class that only one frame has
    split = split_by_group(groups, labels, 10, 20)
    for name in set(groups):
        assert len(set(split[groups == name])) == 1  # a frame is never cut
    assert split[groups == "frame_0"][0] == 0  # its class would have no training tiles
    assert set(labels[split == 0]) == {0, 1, 2}
    fractions = np.bincount(split, minlength=3) / len(groups)
    half_a_frame = 25 / 600  # the shares come as near the percentages as whole frames allow
    np.testing.assert_allclose(fractions[1:], [0.1, 0.2], atol=half_a_frame)
    assert np.all(split_by_group(groups, labels, 0, 0) == 0)


def test_augmentation_is_seeded_and_does_what_it_says() -> None:
    x = tf.constant(np.random.default_rng(0).uniform(0.1, 0.8, (16, 24, 24, 3)), tf.float32)
    flip = Augmentation(flip_left_right=True).apply(x, tf.random.Generator.from_seed(1)).numpy()
    mirrored = [np.allclose(f, x.numpy()[i, :, ::-1]) for i, f in enumerate(flip)]
    same = [np.allclose(f, x.numpy()[i]) for i, f in enumerate(flip)]
    assert all(m != s for m, s in zip(mirrored, same, strict=True)) and 0 < sum(mirrored) < 16
    bright = Augmentation(random_brightness=20).apply(x, tf.random.Generator.from_seed(1)).numpy()
    ratio = bright / x.numpy()
    assert np.allclose(ratio, ratio[:, :1, :1, :1], atol=1e-5)  # one factor per tile
    assert 0.8 <= ratio.min() and ratio.max() <= 1.2 and ratio.std() > 0.02
    crop = Augmentation(random_crop=10, random_scale=20)
    first = crop.apply(x, tf.random.Generator.from_seed(2)).numpy()
    again = crop.apply(x, tf.random.Generator.from_seed(2)).numpy()
    assert first.shape == x.shape and np.array_equal(first, again)
    assert not np.allclose(first, x.numpy(), atol=0.05)


def mean_colour(batch: np.ndarray) -> np.ndarray:
    return batch.reshape(len(batch), -1, 3).mean(axis=1)


def test_bottlenecks_are_batched_cached_by_content_and_resumed(
    demo_tiles: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(bottlenecks_module, "SHARD_SIZE", 4)
    paths = sorted(demo_tiles.glob("*/*.jpg"))[:20]
    batches = []

    def extract(batch: np.ndarray) -> np.ndarray:
        batches.append(len(batch))
        return mean_colour(batch)

    cache = BottleneckCache(tmp_path / "cache")
    features = compute_bottlenecks(paths, extract, cache, batch_size=4)
    expected = mean_colour(np.stack([read_image(p) for p in paths]))
    np.testing.assert_allclose(features, expected, rtol=1e-6)
    assert batches == [4] * 5 and len(list((tmp_path / "cache").glob("*.npz"))) == 5
    # a second run reads everything from the cache; a copy under another name too
    shutil.copy(paths[0], tmp_path / "renamed.jpg")
    batches.clear()
    again = compute_bottlenecks([*paths, tmp_path / "renamed.jpg"], extract, cache, 4)
    assert batches == [] and np.array_equal(again, np.vstack([features, features[:1]]))
    # an interrupted run keeps its finished shards; the next one computes only the rest
    resumable = BottleneckCache(tmp_path / "resume")

    def interrupted(batch: np.ndarray) -> np.ndarray:
        if len(batches) == 3:
            raise KeyboardInterrupt
        return extract(batch)

    batches.clear()
    with pytest.raises(KeyboardInterrupt):
        compute_bottlenecks(paths, interrupted, resumable, batch_size=4)
    batches.clear()
    resumed = compute_bottlenecks(paths, extract, resumable, batch_size=4)
    assert batches == [4, 4] and np.array_equal(resumed, features)


def test_module_handles_errors_say_how_to_pass_a_local_copy(tmp_path: Path) -> None:
    with pytest.raises(DltoolsError, match="--tfhub_module /path/to/module"):
        resolve_module("http://127.0.0.1:9/imagenet/mobilenet_v2/feature_vector/5")
    with pytest.raises(DltoolsError, match=r"no saved_model\.pb"):
        resolve_module(str(tmp_path))
    assert dltools_main(
        ["retrain", "--image_dir", str(tmp_path), "--output_graph", str(tmp_path / "m"),
         "--output_labels", str(tmp_path / "l.txt"), "--tfhub_module", str(tmp_path)]
    ) == 2  # fmt: skip


def test_top_layers_of_the_shared_module(shared_dir: Path) -> None:
    handle = str(shared_dir / "models" / "mobilenet_v2_100_feature_vector")
    layer = feature_layer(handle, trainable=True)
    assert declared_image_size(layer) is None  # takes any size
    names = [v.name for v in top_layer_variables(layer, 2)]
    assert names == ["Conv_1/kernel:0", "Conv_1_bn/gamma:0", "Conv_1_bn/beta:0"]
    assert len(top_layer_variables(layer, 104)) == len(layer.trainable_weights)
    with pytest.raises(DltoolsError, match="only 104 layers"):
        top_layer_variables(layer, 105)
    assert module_key(handle, 96) != module_key(handle, 224)
    assert module_key(handle, 96).startswith("mobilenet_v2_100_feature_vector_96_")


def legacy_graph(path: Path, weights: np.ndarray) -> None:
    """A frozen graph laid out like the original retrain.py's: Placeholder -> final_result."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3])  # named "Placeholder"
        logits = tf.matmul(tf.reduce_mean(images, axis=[1, 2]), tf.constant(weights))
        tf.nn.softmax(logits, name="final_result")
    path.write_bytes(graph.as_graph_def().SerializeToString())


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_loader_reads_legacy_frozen_graphs_and_writes_all_formats(tmp_path: Path) -> None:
    weights = np.array([[4.0, -4.0], [0.0, 1.0], [-3.0, 3.0]], np.float32)
    legacy_graph(tmp_path / "output_graph.pb", weights)
    model = load_model(tmp_path / "output_graph.pb")
    assert (model.image_size, model.num_classes, model.class_names) == ((8, 8), 2, None)
    tiles = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    expected = softmax(mean_colour(tiles / 255.0) @ weights)
    np.testing.assert_allclose(model.predict(tiles), expected, rtol=1e-5)
    big = np.repeat(np.repeat(tiles, 2, axis=1), 2, axis=2)  # other tile sizes are resized
    np.testing.assert_allclose(model.predict(big), expected, rtol=1e-4)

    keras_model = tf_keras.Sequential(
        [tf_keras.Input((8, 8, 3)), tf_keras.layers.GlobalAveragePooling2D(),
         tf_keras.layers.Dense(2, activation="softmax")]
    )  # fmt: skip
    keras_model.layers[-1].set_weights([weights, np.zeros(2, np.float32)])
    for name in ("saved", "model.keras", "graph.pb"):
        save_model(keras_model, tmp_path / name, ["sand", "water"], (8, 8), "test")
        loaded = load_model(tmp_path / name)
        np.testing.assert_allclose(loaded.predict(tiles), expected, rtol=1e-5)
        assert loaded.class_names == (["sand", "water"] if name == "saved" else None)
    with pytest.raises(DltoolsError, match="already exists"):
        save_model(keras_model, tmp_path / "saved", ["sand", "water"], (8, 8), "test")
    (tmp_path / "junk.pb").write_bytes(b"not a graph")
    for bad in ("junk.pb", "missing.pb", "output_graph.txt"):
        with pytest.raises(DltoolsError):
            load_model(tmp_path / bad)


def events(folder: Path) -> dict[str, set[str]]:
    """{run: tags} of the TensorBoard event files below ``folder``."""
    tags: dict[str, set[str]] = {}
    for file in folder.glob("*/events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(file)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.setdefault(file.parent.name, set()).update(v.tag for v in event.summary.value)
    return tags


def test_scratch_cnn_end_to_end_with_summaries(
    demo_tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    args = ["retrain", "--image_dir", str(demo_tiles), "--tfhub_module", "scratch"]
    args += ["--how_many_training_steps", "60", "--train_batch_size", "32"]
    args += ["--eval_step_interval", "20", "--flip_left_right", "--random_brightness", "10"]
    args += ["--legacy"]  # tiles as they come: the test split's proportions
    args += ["--output_graph", str(out / "model.keras"), "--output_labels", str(out / "labels.txt")]
    args += ["--summaries_dir", str(out / "summaries"), "--seed", "1"]
    assert dltools_main(args) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    final = FINAL_LINE.match(printed[-1])
    assert final, printed[-1]
    classes = sorted(p.name for p in demo_tiles.iterdir() if p.is_dir())
    assert read_labels(out / "labels.txt") == classes
    metrics = json.loads((out / "model_metrics.json").read_text())
    assert metrics["class_names"] == classes and metrics["image_size"] == 48
    assert metrics["bands"] == read_band_choice(demo_tiles).to_dict() == RGB8.to_dict()
    assert [h["step"] for h in metrics["history"]] == [20, 40, 60]
    assert metrics["test"]["n"] == int(final.group(2)) > 0
    assert metrics["test"]["accuracy"] == pytest.approx(float(final.group(1)) / 100, abs=1e-3)
    assert metrics["test"]["accuracy"] > 0.8  # the demo classes differ plainly in colour
    tags = events(out / "summaries")
    assert {"loss", "accuracy"} <= tags["train"]
    assert {"loss", "accuracy", "confusion_matrix"} <= tags["validation"]
    model = load_model(out / "model.keras")
    water = read_image(sorted((demo_tiles / "water").glob("*.jpg"))[0])[np.newaxis]
    assert model.predict(water).argmax() == classes.index("water")
    # outputs are never overwritten without --force, and the refusal comes before any work
    assert dltools_main(args) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_early_stopping_keeps_the_best_weights(demo_tiles: Path, tmp_path: Path) -> None:
    args = ["retrain", "--image_dir", str(demo_tiles), "--tfhub_module", "scratch"]
    args += ["--how_many_training_steps", "400", "--train_batch_size", "16"]
    args += ["--eval_step_interval", "5", "--early_stopping", "2", "--balance"]
    args += ["--output_graph", str(tmp_path / "m"), "--output_labels", str(tmp_path / "l.txt")]
    assert dltools_main(args) == 0
    history = json.loads((tmp_path / "m_metrics.json").read_text())["history"]
    accuracies = [h["validation_accuracy"] for h in history]
    assert history[0]["step"] == 0 and history[-1]["step"] < 400
    assert accuracies[-1] <= max(accuracies[:-2])  # stopped for lack of progress
    assert load_model(tmp_path / "m").class_names == read_labels(tmp_path / "l.txt")


def library(root: Path, counts: dict[str, int]) -> Path:
    """A tile library with ``counts`` copies of a demo tile per class."""
    tile = next((DEMO / "images").iterdir())
    pixels = read_image(tile)[:32, :32]
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            tf.io.write_file(str(root / name / f"{name}_{i}.jpg"), tf.io.encode_jpeg(pixels))
    return root


@pytest.mark.parametrize(
    ("counts", "damage", "testing", "message"),
    [
        ({"sand": 30, "water": 0}, None, "10", "without any image: water"),
        ({"sand": 30}, None, "10", "only one class folder"),
        ({"sand": 30, "water": 30}, "water/water_3.jpg", "10", "water_3.jpg"),
        ({"sand": 30, "water": 2}, None, "59", "no training tiles for water"),
    ],
)
def test_bad_libraries_are_clear_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    counts: dict,
    damage: str | None,
    testing: str,
    message: str,
) -> None:
    root = library(tmp_path / "tiles", counts)
    if damage:
        (root / damage).write_bytes(b"\xff\xd8 this is not a JPEG")
    args = ["retrain", "--image_dir", str(root), "--tfhub_module", "scratch"]
    args += ["--output_graph", str(tmp_path / "m"), "--output_labels", str(tmp_path / "l.txt")]
    args += ["--how_many_training_steps", "2", "--validation_percentage", "40"]
    args += ["--testing_percentage", testing]
    assert dltools_main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / "l.txt").exists()
    assert list_images(tmp_path) == []


def test_fine_tuning_needs_a_pretrained_module(demo_tiles: Path, tmp_path: Path) -> None:
    args = ["retrain", "--image_dir", str(demo_tiles), "--tfhub_module", "scratch"]
    args += ["--fine_tune_layers", "3", "--output_graph", str(tmp_path / "m")]
    args += ["--output_labels", str(tmp_path / "l.txt")]
    assert dltools_main(args) == 2


def trained_settings(demo_tiles: Path, folder: Path, module: str | Path, *extra: str) -> dict:
    """Train a few steps with ``extra`` options; the settings its metrics record."""
    args = ["retrain", "--image_dir", str(demo_tiles), "--tfhub_module", str(module)]
    args += ["--output_graph", str(folder / "m"), "--output_labels", str(folder / "l.txt")]
    args += ["--how_many_training_steps", "4", "--eval_step_interval", "2", *extra]
    assert dltools_main(args) == 0
    return json.loads((folder / "m_metrics.json").read_text())


def test_defaults_are_the_recipe_and_legacy_is_the_original(demo_tiles: Path, tmp_path) -> None:
    recipe = trained_settings(demo_tiles, tmp_path / "recipe", "scratch")["settings"]
    assert recipe["balance"] and recipe["augmentation"]["flip_left_right"]
    assert recipe["augmentation"]["random_brightness"] == 10
    assert recipe["fine_tune_layers"] == 0  # scratch trains its whole network anyway
    legacy = trained_settings(demo_tiles, tmp_path / "legacy", "scratch", "--legacy")["settings"]
    assert not legacy["balance"] and not legacy["augmentation"]["flip_left_right"]
    assert legacy["augmentation"]["random_brightness"] == 0 and legacy["fine_tune_layers"] == 0
    assert recipe["tile_sized_input"] and not legacy["tile_sized_input"]
    mixed = ["--legacy", "--balance", "--random_brightness", "5"]
    mixed = trained_settings(demo_tiles, tmp_path / "mixed", "scratch", *mixed)["settings"]
    assert mixed["balance"] and mixed["augmentation"]["random_brightness"] == 5
    assert not mixed["augmentation"]["flip_left_right"]


@pytest.mark.parametrize(
    ("side", "extra", "input_side"),
    [
        (48, [], 96),  # small tiles: enlarged to MobileNetV2's smallest ImageNet size
        (160, [], 160),  # tiles between 96 and 224 px go in as they are
        (300, [], 224),  # large tiles: no dearer than the size the module learnt at
        (48, ["--legacy"], 224),  # dl_tools of 2018
        (48, ["--image_size", "64"], 64),  # the option wins
    ],
)
def test_a_size_agnostic_module_sees_tiles_at_about_their_own_size(
    shared_dir: Path, tmp_path: Path, side: int, extra: list[str], input_side: int
) -> None:
    rng = np.random.default_rng(0)
    for k, name in enumerate(("dark", "light")):
        (tmp_path / "tiles" / name).mkdir(parents=True)
        for i in range(3):
            tile = rng.integers(0, 128, (side, side, 3)) + 127 * k
            write_image(tmp_path / "tiles" / name / f"t{i}.png", tile.astype(np.uint8))
    module = shared_dir / "models" / "mobilenet_v2_100_feature_vector"
    extra = [*extra, "--validation_percentage", "0", "--testing_percentage", "0"]
    extra += ["--fine_tune_steps", "1"]
    metrics = trained_settings(tmp_path / "tiles", tmp_path, module, *extra)
    assert metrics["image_size"] == input_side
    assert load_model(tmp_path / "m").image_size == (input_side, input_side)
    assert metrics["tile_size"] == model_tile_size(tmp_path / "m") == side  # step 6's tile size


def test_split_by_image_holds_out_whole_photos_when_there_are_enough(
    demo_tiles: Path, tmp_path: Path
) -> None:
    metrics = trained_settings(demo_tiles, tmp_path / "eight", "scratch", "--split", "image")
    assert metrics["split_by"] == "image" and metrics["settings"]["split"] == "image"
    held = metrics["held_out_images"]
    assert (
        held["validation"]
        and held["testing"]
        and not set(held["validation"]) & set(held["testing"])
    )
    for split, photos in held.items():  # every tile of a held-out photo, none of the others
        tiles = sum(len(list(demo_tiles.glob(f"*/{photo}_*.jpg"))) for photo in photos)
        assert sum(metrics["tiles"][split].values()) == tiles
    two = tmp_path / "two_photos"  # too few photos to hold any out: split by tile, said so
    for tile in demo_tiles.glob("*/*.jpg"):
        if tile.name.startswith(("coast_01_", "coast_02_")):
            (two / tile.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(tile, two / tile.parent.name / tile.name)
    shutil.copy(demo_tiles / "bands.json", two / "bands.json")
    assert trained_settings(two, tmp_path / "two", "scratch", "--split", "image")["split_by"] == (
        "tile"
    )
    assert trained_settings(demo_tiles, tmp_path / "default", "scratch")["split_by"] == "tile"


def test_recipe_trains_the_head_on_cached_bottlenecks_then_fine_tunes(
    shared_dir: Path, demo_tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """With distortions and fine-tuning (the defaults), the softmax layer still learns from the
    cached bottlenecks; the distorted tiles go through the module while it is fine-tuned."""
    module = shared_dir / "models" / "mobilenet_v2_100_feature_vector"
    cache = tmp_path / "bottlenecks"
    extra = ["--image_size", "48", "--fine_tune_steps", "4", "--bottleneck_dir", str(cache)]
    metrics = trained_settings(demo_tiles, tmp_path, module, *extra)
    assert "bottlenecks: 0 of" in capsys.readouterr().out  # computed, none cached before
    assert sum(1 for _ in cache.glob("*/*.npz")) > 0
    assert metrics["settings"]["fine_tune_layers"] == 20
    assert [(h["phase"], h["step"]) for h in metrics["history"]] == [
        ("train", 2), ("train", 4), ("fine-tune", 6), ("fine-tune", 8)
    ]  # fmt: skip
