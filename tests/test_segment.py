"""Step 6 (dltools segment / semseg_cnn_crf.py) on synthetic scenes and the demo GeoTIFF.

The tile model here is a real SavedModel, written and loaded by dltools.models.loader: a
softmax layer on each tile's mean colour and mean squared colour (global average pooling),
fitted (scikit-learn) on the pure tiles of *other* scenes. It is a genuine tile classifier,
blind to everything inside a tile, so the raw tile map is blocky and the refiners have real
work to do at class boundaries.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import tf_keras
from gis_checks import (
    assert_cog,
    assert_continuous_style,
    assert_styled_classes,
    assert_vector_matches,
)
from processes import Interrupter
from sklearn.linear_model import LogisticRegression

from dltools.cli import main as dltools_main
from dltools.cli.segment import main_original
from dltools.engines.crf import NODATA
from dltools.engines.tiles import decimated, pure_windows, tile_classes, tile_grid
from dltools.errors import DltoolsError
from dltools.io.discovery import find_images
from dltools.io.geo import read_nodata_mask, read_profile, read_raster
from dltools.io.images import read_image, write_image
from dltools.io.labels import read_classes, read_labels, write_colors, write_labels
from dltools.io.results import read_result
from dltools.models.loader import TileModel, load_model, save_model
from dltools.pipeline.segment import SegmentParams, classify_tiles, segment_image
from dltools.raster.bands import RGB8, BandChoice
from dltools.synthetic.scenes import CLASS_NAMES, coastal_scene

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"
TILE = 32
COLORS = np.array([[0, 0, 255], [255, 255, 255], [139, 69, 19], [255, 215, 0], [0, 128, 0],
                   [128, 128, 128]], np.uint8)  # fmt: skip


def tile_model(
    path: Path,
    scenes: list[tuple[np.ndarray, np.ndarray]],
    tile: int,
    bands: BandChoice = RGB8,
) -> Path:
    """Train and save a tile model on the pure tiles of ``(image, 1-based labels)`` pairs
    (8-bit RGB; ``bands`` is recorded as the model's input)."""
    tiles, targets = [], []
    for image, labels in scenes:
        for row, col, label, _ in pure_windows(labels, tile, tile // 2, 0.9, len(CLASS_NAMES)):
            tiles.append(image[row : row + tile, col : col + tile] / 255.0)
            targets.append(label - 1)
    x = np.stack(tiles)
    features = np.concatenate([x.mean(axis=(1, 2)), (x * x).mean(axis=(1, 2))], axis=1)
    fitted = LogisticRegression(C=100, max_iter=2000).fit(features, targets)
    coef = np.zeros((features.shape[1], len(CLASS_NAMES)))
    bias = np.full(len(CLASS_NAMES), -50.0)  # classes without tiles are never predicted
    coef[:, fitted.classes_], bias[fitted.classes_] = fitted.coef_.T, fitted.intercept_
    inputs = tf_keras.Input((tile, tile, 3))
    pool = tf_keras.layers.GlobalAveragePooling2D()
    squares = tf_keras.layers.Multiply()([inputs, inputs])
    moments = tf_keras.layers.Concatenate()([pool(inputs), pool(squares)])
    dense = tf_keras.layers.Dense(len(CLASS_NAMES), activation="softmax")
    model = tf_keras.Model(inputs, dense(moments))
    dense.set_weights([coef, bias])
    module = "test: tile colour moments"
    save_model(model, path, CLASS_NAMES, (tile, tile), module, bands=bands, tile_size=tile)
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("segment")
    image, labels = coastal_scene(384, 512, seed=1)
    write_image(root / "scene.jpg", image)
    write_labels(root / "labels.txt", CLASS_NAMES)
    write_colors(root / "colors.txt", COLORS)
    model_path = tile_model(root / "model", [coastal_scene(768, 1024, seed=2)], TILE)
    return {
        "root": root,
        "image": read_image(root / "scene.jpg"),  # as the CLI sees it (after JPEG)
        "labels": labels.astype(np.int64) - 1,
        "model": load_model(model_path),
        "model_path": model_path,
    }


class CountingModel:
    """A TileModel wrapper that counts forward calls and the tiles in each."""

    def __init__(self, model: TileModel):
        self.model = model
        self.calls: list[int] = []
        self.num_classes = model.num_classes

    def predict(self, tiles: np.ndarray, batch_size: int = 64) -> np.ndarray:
        self.calls += [len(tiles[i : i + batch_size]) for i in range(0, len(tiles), batch_size)]
        return self.model.predict(tiles, batch_size)


def test_tile_grid_covers_every_pixel_with_edge_aligned_last_tiles() -> None:
    grid = tile_grid(100, 70, 32)
    assert grid.rows.tolist() == [0, 32, 64, 68] and grid.cols.tolist() == [0, 32, 38]
    rows = grid.index(100, 100, 0)
    assert rows[[0, 31, 32, 95, 96, 99]].tolist() == [0, 0, 1, 2, 3, 3]
    for i, r in enumerate(rows):  # every pixel lies inside the tile it is given
        assert grid.rows[r] <= i < grid.rows[r] + 32
    small = tile_grid(20, 64, 32)  # shorter than a tile: one (padded) tile row
    assert small.rows.tolist() == [0] and small.cols.tolist() == [0, 32]


def test_decimation_spreads_the_chosen_tiles_over_every_column() -> None:
    chosen = decimated((12, 16), 8)
    assert chosen.sum() == 12 * 16 // 8
    assert (chosen.sum(axis=1) == 2).all()  # every row: every 8th tile
    assert chosen.any(axis=0).all()  # the original's row-major pick covers only 2 columns
    assert decimated((5, 7), 1).all()


def test_tiles_are_classified_in_batches_never_one_call_per_tile(scene: dict) -> None:
    grid = tile_grid(*scene["image"].shape[:2], TILE)
    counting = CountingModel(scene["model"])
    probs = classify_tiles(scene["image"], grid, counting, batch_size=64)
    assert grid.shape == (12, 16) and counting.calls == [64, 64, 64]
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=2), 1, atol=1e-4)
    counting.calls.clear()
    sparse = classify_tiles(scene["image"], grid, counting, decim=4, batch_size=64)
    assert counting.calls == [48]
    np.testing.assert_array_equal(np.isfinite(sparse).all(axis=2), decimated(grid.shape, 4))
    np.testing.assert_array_equal(sparse[decimated(grid.shape, 4)], probs[decimated(grid.shape, 4)])


def accuracy(class_map: np.ndarray, truth: np.ndarray) -> float:
    return float((class_map == truth).mean())


@pytest.fixture(scope="module")
def segmented(scene: dict) -> dict:
    """The scene segmented by every method (working scale 0.5)."""
    return {
        method: segment_image(
            scene["image"],
            scene["model"],
            SegmentParams(tile=TILE, fct=0.5, refine=method),
            workers=1,
        )
        for method in ("none", "crf", "mlp", "rf")
    }


def test_every_refiner_beats_the_raw_tile_map(scene: dict, segmented: dict) -> None:
    raw = accuracy(segmented["none"].class_map, scene["labels"])
    scores = {m: accuracy(s.class_map, scene["labels"]) for m, s in segmented.items()}
    print(f"synthetic scene, pixel accuracy: {scores}")
    assert 0.6 < raw < 0.9  # blocky: tiles straddle boundaries
    for method in ("crf", "mlp", "rf"):
        assert scores[method] > raw + 0.03, method
    # the raw map gives each pixel its own tile's class
    grid = segmented["none"].grid
    top = segmented["none"].tile_probs.argmax(axis=2)
    assert segmented["none"].class_map[100, 200] == top[100 // TILE, 200 // TILE]
    for s in segmented.values():
        assert s.class_map.shape == scene["labels"].shape and s.class_map.dtype == np.uint8
        assert s.posteriors.shape == (192, 256, len(CLASS_NAMES))
        assert s.tile_probs.shape == (*grid.shape, len(CLASS_NAMES))


def test_tiles_below_prob_thres_are_left_to_the_refiner(scene: dict, segmented: dict) -> None:
    probs = segmented["crf"].tile_probs
    top = probs.max(axis=2)
    thres = float(np.quantile(top, 0.3))  # about 30% of the tiles fall below
    classes = tile_classes(probs, thres)
    assert ((classes == 0) == (top < thres)).all() and 0.2 < (classes == 0).mean() < 0.4
    params = SegmentParams(tile=TILE, fct=0.5, prob_thres=thres, refine="crf")
    seg = segment_image(scene["image"], scene["model"], params, workers=1)
    assert (seg.class_map != NODATA).all()  # the unknown tiles' pixels are labelled too
    unknown = seg.grid.expand(classes == 0, seg.class_map.shape, seg.class_map.shape)
    assert accuracy(seg.class_map[unknown], scene["labels"][unknown]) > 0.6
    nodata = np.ones(scene["image"].shape[:2], bool)  # all nodata: nothing to classify
    empty = segment_image(scene["image"], scene["model"], params, nodata)
    assert (empty.class_map == NODATA).all() and not np.isfinite(empty.tile_probs).any()
    grey = np.full((96, 128, 3), 128, np.uint8)  # every tile alike, none certain
    best = float(scene["model"].predict(grey[None, :TILE, :TILE]).max())
    assert best < 0.999
    with pytest.raises(DltoolsError, match="PROB_THRES"):
        segment_image(grey, scene["model"], SegmentParams(tile=TILE, prob_thres=(best + 1) / 2))


def test_the_per_image_classifiers_are_reproducible_for_a_seed(scene: dict) -> None:
    maps = [
        segment_image(
            scene["image"], scene["model"], SegmentParams(tile=TILE, refine="mlp", seed=seed)
        ).class_map
        for seed in (3, 3, 4)
    ]  # fmt: skip
    np.testing.assert_array_equal(maps[0], maps[1])
    assert not np.array_equal(maps[0], maps[2])


def test_bad_settings_are_refused() -> None:
    for bad in (dict(tile=4), dict(prob=1.0), dict(decim=0), dict(fct=0), dict(refine="svm")):
        with pytest.raises(DltoolsError):
            SegmentParams(**bad)


# --- the command line ----------------------------------------------------------------------


def test_original_script_writes_ares_mat_and_figure_and_refuses_to_overwrite(
    scene: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = scene["root"]
    args = [root / "scene.jpg", scene["model_path"], root / "labels.txt", root / "colors.txt"]
    args = [str(a) for a in [*args, TILE, 0.5, 0.5, 1, 0.5, "--out-dir", tmp_path]]
    assert main_original(args) == 0
    mat = scipy.io.loadmat(tmp_path / "scene_ares_32.mat")
    assert [s.strip() for s in mat["labels"]] == list(CLASS_NAMES)
    assert mat["class"].shape == (384, 512) and mat["class"].max() < len(CLASS_NAMES)
    assert mat["preds"].shape == (192, 256, len(CLASS_NAMES))
    probs = classify_tiles(scene["image"], tile_grid(384, 512, TILE), scene["model"])
    expected = tile_classes(probs, 0.5).repeat(TILE, axis=0).repeat(TILE, axis=1)
    np.testing.assert_array_equal(mat["sparse"], expected)  # tile classes + 1, 0 = none
    assert read_image(tmp_path / "scene_ares_32.png").shape[2] in (3, 4)
    assert "scene_ares_32.mat" in capsys.readouterr().out
    before = (tmp_path / "scene_ares_32.mat").read_bytes()
    assert main_original(args) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "scene_ares_32.mat").read_bytes() == before


def test_script_help_names_the_original_arguments() -> None:
    script = REPO / "semseg_crf" / "semseg_cnn_crf.py"
    out = subprocess.run(
        [sys.executable, script, "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "IMAGE MODEL LABELS COLORS TILE PROB_THRES PROB DECIM FCT" in " ".join(out.split())
    assert "--refine {crf,mlp,rf,none}" in out and "(default: None" not in out


def test_folders_give_their_images_but_not_label_rasters_or_outputs(tmp_path: Path) -> None:
    picture = np.zeros((40, 60, 3), np.uint8)
    for name in ("a.jpg", "b.png", "a_ares_96.png", "b_mres.png"):
        write_image(tmp_path / name, picture)
    write_image(tmp_path / "SCLS_a.tif", np.zeros((40, 60), np.uint8))  # a's label raster
    assert [p.name for p in find_images([str(tmp_path)])] == ["a.jpg", "b.png"]
    with pytest.raises(DltoolsError, match="not an image"):
        find_images([str(tmp_path / "missing.jpg")])


def test_labels_that_do_not_match_the_model_are_refused(
    scene: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_labels(tmp_path / "labels.txt", list(reversed(CLASS_NAMES)))
    args = ["segment", scene["root"] / "scene.jpg", "-m", scene["model_path"], "-l"]
    args += [tmp_path / "labels.txt", "-c", scene["root"] / "colors.txt", "--out-dir", tmp_path]
    assert dltools_main([str(a) for a in args]) == 2
    assert "labels file written with the model" in capsys.readouterr().err
    assert not list(tmp_path.glob("*_ares_*"))


def test_the_tile_size_is_the_models_unless_given(
    scene: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["segment", scene["root"] / "scene.jpg", "-m", scene["model_path"], "-l"]
    args += [scene["root"] / "labels.txt", "-c", scene["root"] / "colors.txt", "--refine", "none"]
    assert dltools_main([str(a) for a in [*args, "--out-dir", tmp_path / "own"]]) == 0
    assert f"tiles of {TILE} px" in capsys.readouterr().out  # recorded in the model
    own = read_result(tmp_path / "own" / f"scene_ares_{TILE}.mat")
    assert dltools_main([str(a) for a in [*args, "--out-dir", tmp_path / "given", "-t", 64]]) == 0
    given = read_result(tmp_path / "given" / "scene_ares_64.mat")
    assert np.mean(own.class_map != given.class_map) > 0.01  # tiles of 64 px: another map
    (scene["model_path"] / "dltools.json").rename(tmp_path / "meta.json")  # a model of old
    try:
        assert dltools_main([str(a) for a in [*args, "--out-dir", tmp_path / "old"]]) == 0
    finally:
        (tmp_path / "meta.json").rename(scene["model_path"] / "dltools.json")
    assert (tmp_path / "old" / "scene_ares_96.mat").is_file()  # dl_tools' default


# --- GeoTIFFs, whole and in windows --------------------------------------------------------


@pytest.fixture(scope="module")
def ortho(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo orthomosaic (900 x 900, nodata 0) and a tile model trained on 4 demo photos."""
    root = tmp_path_factory.mktemp("ortho")
    photos = [
        (read_image(DEMO / "images" / f"coast_0{i}.jpg"),
         read_image(DEMO / "labels" / f"coast_0{i}_label.png")[..., 0])
        for i in range(1, 5)
    ]  # fmt: skip
    labels = read_image(DEMO / "geotiff" / "coast_ortho_label.tif")[..., 0]
    model = tile_model(root / "model", photos, 30)
    write_colors(root / "colors.txt", COLORS)
    return {"root": root, "model": model, "labels": labels}


def run_ortho(ortho: dict, out: Path, *options: str) -> None:
    args = ["segment", DEMO / "geotiff" / "coast_ortho.tif", "-m", ortho["model"], "-l"]
    args += [DEMO / "labels.txt", "-c", ortho["root"] / "colors.txt", "-t", 30, "--fct", 0.5]
    assert dltools_main([str(a) for a in [*args, "--out-dir", out, *options]]) == 0


@pytest.mark.parametrize("method", ["none", "crf"])
def test_geotiffs_in_windows_match_the_whole_and_keep_the_grid(
    ortho: dict, tmp_path: Path, method: str
) -> None:
    source = DEMO / "geotiff" / "coast_ortho.tif"
    run_ortho(ortho, tmp_path / "whole", "--refine", method, "--workers", "1")
    windows_run = ["--workers", "1", "--block", "300", "--vector", "--vector-window", "256"]
    run_ortho(ortho, tmp_path / "windows", "--refine", method, *windows_run)
    whole = read_raster(tmp_path / "whole" / "coast_ortho_ares_30.tif")[..., 0]
    windows = read_raster(tmp_path / "windows" / "coast_ortho_ares_30.tif")[..., 0]
    assert (tmp_path / "whole" / "coast_ortho_ares_30.mat").is_file()
    assert not (tmp_path / "windows" / "coast_ortho_ares_30.mat").exists()  # too big for .mat
    assert (tmp_path / "windows" / "coast_ortho_ares_30.png").is_file()
    nodata = read_nodata_mask(source)
    assert nodata.any() and (whole[nodata] == 0).all() and (whole[~nodata] > 0).all()
    agreement = (whole == windows)[~nodata].mean()
    if method == "none":  # windows are cut on the tile grid: the very same tiles
        assert agreement == 1
    else:  # one CRF per window, each with its own context
        assert agreement > 0.95
    truth = ortho["labels"]
    assert ((whole == truth)[truth > 0]).mean() > (0.8 if method == "crf" else 0.7)
    profile, written = (
        read_profile(source),
        read_profile(tmp_path / "whole" / "coast_ortho_ares_30.tif"),
    )
    assert written["crs"] == profile["crs"] and written["transform"] == profile["transform"]
    assert written["nodata"] == 0 and written["dtype"] == "uint8"
    prob = read_raster(tmp_path / "whole" / "coast_ortho_ares_30_prob.tif")[..., 0]
    assert np.isnan(prob[nodata]).all() and 0 < prob[~nodata].min() <= prob[~nodata].max() <= 1
    for raster in ("coast_ortho_ares_30.tif", "coast_ortho_ares_30_prob.tif"):
        assert_cog(tmp_path / "windows" / raster)
    classes = read_classes(DEMO / "labels.txt", ortho["root"] / "colors.txt")
    assert_styled_classes(tmp_path / "windows" / "coast_ortho_ares_30.tif", classes)
    assert_continuous_style(tmp_path / "windows" / "coast_ortho_ares_30_prob.tif")
    gpkg = tmp_path / "windows" / "coast_ortho_ares_30.gpkg"
    assert_vector_matches(gpkg, tmp_path / "windows" / "coast_ortho_ares_30.tif", confidence=True)


def test_a_plain_photo_larger_than_a_block_keeps_its_labels_in_tiffs(
    ortho: dict, tmp_path: Path
) -> None:
    """A photo without georeferencing done in windows has no .mat (it could not hold it): its
    class map and probabilities go to TIFFs without a CRS, the very tiles of the photo done
    whole (they were once lost: only the figure was written)."""
    photo = tmp_path / "coast_ortho.png"
    write_image(photo, read_image(DEMO / "geotiff" / "coast_ortho.tif"))
    args = ["segment", photo, "-m", ortho["model"], "-l", DEMO / "labels.txt", "-c"]
    args += [ortho["root"] / "colors.txt", "-t", 30, "--refine", "none", "--workers", 1]
    for name, block in (("whole", 8192), ("windows", 300)):
        run = [*args, "--block", block, "--out-dir", tmp_path / name]
        assert dltools_main([str(a) for a in run]) == 0
    names = read_labels(DEMO / "labels.txt")
    whole = read_result(tmp_path / "whole" / "coast_ortho_ares_30.mat", names).class_map
    assert sorted(p.name for p in (tmp_path / "windows").iterdir()) == [
        f"coast_ortho_ares_30{end}" for end in (".png", ".qml", ".tif", "_prob.qml", "_prob.tif")
    ]
    windows = tmp_path / "windows" / "coast_ortho_ares_30.tif"
    assert (read_raster(windows)[..., 0] == whole.astype(np.int16) + 1).all()
    assert read_profile(windows)["crs"] is None
    assert_styled_classes(windows, read_classes(DEMO / "labels.txt", ortho["root"] / "colors.txt"))
    prob = read_raster(tmp_path / "windows" / "coast_ortho_ares_30_prob.tif")[..., 0]
    assert prob.shape == whole.shape and 0 < prob.min() <= prob.max() <= 1
    vector = [*args, "--block", 300, "--out-dir", tmp_path / "vector", "--vector"]
    assert dltools_main([str(a) for a in vector]) == 2  # polygons need a CRS
    assert not (tmp_path / "vector").exists()  # refused before anything is written


def test_an_interrupted_raster_resumes_from_its_finished_windows(
    ortho: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orthomosaic in 9 windows of 300 px: a run interrupted after 4 windows leaves no
    output; ``--resume`` segments only the other 5 and writes the uninterrupted run's rasters,
    uncertainty and ranked windows (whose means are those of the uncertainty raster)."""
    options = ("--refine", "none", "--block", "300", "--uncertainty")
    run_ortho(ortho, tmp_path / "straight", *options)
    interrupter = Interrupter(monkeypatch)
    out = tmp_path / "resumed"
    args = ["segment", DEMO / "geotiff" / "coast_ortho.tif", "-m", ortho["model"], "-l"]
    args += [DEMO / "labels.txt", "-c", ortho["root"] / "colors.txt", "-t", 30, "--fct", 0.5]
    args += [*options, "--out-dir", out]
    interrupter.stop_after = 4
    assert dltools_main([str(a) for a in args]) == 130
    assert [p.name for p in out.iterdir()] == [".resume-coast_ortho_ares_30.png"]
    interrupter.ran.clear()
    interrupter.stop_after = None
    assert dltools_main([str(a) for a in [*args, "--resume"]]) == 0
    assert len(interrupter.ran) == 5  # the 4 finished windows were read back
    assert not (out / ".resume-coast_ortho_ares_30.png").exists()
    for name in ("coast_ortho_ares_30.tif", "coast_ortho_ares_30_prob.tif"):  # NaN == NaN here
        np.testing.assert_array_equal(
            read_raster(out / name), read_raster(tmp_path / "straight" / name)
        )
    uncertainty = read_raster(out / "coast_ortho_ares_30_uncertainty.tif")[..., 0]
    assert_cog(out / "coast_ortho_ares_30_uncertainty.tif")
    labels = read_raster(out / "coast_ortho_ares_30.tif")[..., 0]
    assert np.array_equal(np.isnan(uncertainty), labels == 0) and np.nanmax(uncertainty) > 0
    next_csv = (out / "coast_ortho_ares_30_next.csv").read_text()
    assert next_csv == (tmp_path / "straight" / "coast_ortho_ares_30_next.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(next_csv)))
    assert len(rows) == 4  # 512-px windows over 900 x 900, edge-aligned
    for row in rows:
        r, c, h, w = (int(row[k]) for k in ("row", "col", "height", "width"))
        mean = np.nanmean(uncertainty[r : r + h, c : c + w])
        assert float(row["mean_uncertainty"]) == pytest.approx(mean, abs=1e-4)


def test_colours_come_from_a_colors_file_or_from_labeldefs_by_name(tmp_path: Path) -> None:
    write_labels(tmp_path / "labels.txt", ["veg", "water"])
    labels = str(tmp_path / "labels.txt")
    names, colors = read_classes(labels, str(DEMO / "labeldefs.txt"))
    assert names == ["veg", "water"] and colors.tolist() == [[46, 139, 60], [31, 97, 171]]
    (tmp_path / "colors.txt").write_text("g\nb\n")
    assert read_classes(labels, str(tmp_path / "colors.txt"))[1].tolist() == [
        [0, 128, 0], [0, 0, 255]
    ]  # fmt: skip
    write_labels(tmp_path / "labels.txt", ["veg", "lava"])
    with pytest.raises(DltoolsError, match="no colour for lava"):
        read_classes(labels, str(DEMO / "labeldefs.txt"))


# --- which bands feed the model ------------------------------------------------------------


def segment_photo(ortho: dict, image: Path, out: Path, *options: str) -> int:
    args = ["segment", image, "-m", ortho["model"], "-l", DEMO / "labels.txt", "-c"]
    args += [ortho["root"] / "colors.txt", "-t", 30, "--refine", "none", "--out-dir", out]
    return dltools_main([str(a) for a in [*args, *options]])


def test_uncertainty_finds_the_errors_and_ranks_the_images_to_label_next(
    ortho: dict, tmp_path: Path, capsys
) -> None:
    """``--uncertainty`` on 4 demo photos the model never saw (it learnt from photos 1-4):
    each gets its uncertainty raster and ranked windows; the uncertainty is higher where the
    labels are wrong than where they are right; the run ranks the photos, most uncertain
    first, and a second run does not overwrite that ranking."""
    from sklearn.metrics import roc_auc_score

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5, 9):
        (photos / f"coast_0{i}.jpg").symlink_to(DEMO / "images" / f"coast_0{i}.jpg")
    out = tmp_path / "out"
    assert segment_photo(ortho, photos, out, "--refine", "mlp", "--uncertainty") == 0
    wrong, values = [], []
    for i in range(5, 9):
        stem = out / f"coast_0{i}_ares_30"
        truth = read_image(DEMO / "labels" / f"coast_0{i}_label.png")[..., 0]
        found = scipy.io.loadmat(f"{stem}.mat")["class"] + 1
        uncertainty = read_image(f"{stem}_uncertainty.png")[..., 0]
        assert uncertainty.shape == truth.shape and uncertainty.dtype == np.uint8
        with open(f"{stem}_next.csv") as f:
            assert f.readline().startswith("rank,row,col,height,width,mean_uncertainty,doubt")
        assert Path(f"{stem}_next.geojson").is_file()
        known = truth > 0
        wrong.append(found[known] != truth[known])
        values.append(uncertainty[known])
    wrong = np.concatenate(wrong)
    auc = roc_auc_score(wrong, np.concatenate(values))
    assert 0.02 < wrong.mean() and auc >= 0.75
    lines = (out / "uncertainty_ranking.csv").read_text().splitlines()
    assert lines[0] == "rank,image,mean_uncertainty,top_window_uncertainty,next"
    means = [float(line.split(",")[2]) for line in lines[1:]]
    assert len(means) == 4 and means == sorted(means, reverse=True)
    assert "label next (most uncertain first): coast_0" in capsys.readouterr().out
    assert segment_photo(ortho, photos, out, "--uncertainty") == 2  # nothing overwritten
    assert "uncertainty_ranking.csv" in capsys.readouterr().err
    with capsys.disabled():
        print(f"\nlabels wrong on {wrong.mean():.3f} of the pixels; uncertainty AUC {auc:.3f}")


def test_an_rgba_photo_is_refused_or_labelled_as_its_rgb_original(
    ortho: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 12: coast_01.jpg saved as RGBA was labelled vegetation (band 1 three times)."""
    rgb = read_image(DEMO / "images" / "coast_01.jpg")
    alpha = np.full((*rgb.shape[:2], 1), 255, np.uint8)
    write_image(tmp_path / "rgba" / "coast_01.png", np.concatenate([rgb, alpha], axis=2))
    assert segment_photo(ortho, DEMO / "images" / "coast_01.jpg", tmp_path / "rgb") == 0
    capsys.readouterr()
    assert segment_photo(ortho, tmp_path / "rgba" / "coast_01.png", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "4 band(s)" in err and "bands 1,2,3" in err
    assert "--bands" in err and not (tmp_path / "out").exists()
    options = ("--bands", "1,2,3")
    assert segment_photo(ortho, tmp_path / "rgba" / "coast_01.png", tmp_path / "out", *options) == 0
    expected = scipy.io.loadmat(tmp_path / "rgb" / "coast_01_ares_30.mat")["class"]
    got = scipy.io.loadmat(tmp_path / "out" / "coast_01_ares_30.mat")["class"]
    np.testing.assert_array_equal(got, expected)
    grey = tmp_path / "grey" / "coast_01.png"  # one band: no silent repetition either
    write_image(grey, rgb[..., :1])
    assert segment_photo(ortho, grey, tmp_path / "out_grey") == 2
    assert "1 band(s)" in capsys.readouterr().err


def test_16_bit_images_take_the_stretch_saved_with_the_model(
    ortho: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rgb = read_image(DEMO / "images" / "coast_01.jpg")
    deep = tmp_path / "coast_01.tif"
    write_image(deep, rgb.astype(np.uint16) * 100 + 1000)  # 1000..26500
    assert segment_photo(ortho, deep, tmp_path / "refused") == 2  # an 8-bit model
    assert "uint16" in capsys.readouterr().err and not (tmp_path / "refused").exists()
    stretched = BandChoice((1, 2, 3), 3, "uint16", ((1000.0, 26500.0),) * 3)
    photos = [(read_image(DEMO / "images" / "coast_02.jpg"),
               read_image(DEMO / "labels" / "coast_02_label.png")[..., 0])]  # fmt: skip
    model = tile_model(tmp_path / "model16", photos, 30, stretched)
    assert load_model(model).bands == stretched
    model8 = tile_model(tmp_path / "model8", photos, 30)
    for path, net, out in ((deep, model, "a"), (DEMO / "images" / "coast_01.jpg", model8, "b")):
        args = ["segment", path, "-m", net, "-l", DEMO / "labels.txt", "-c"]
        args += [ortho["root"] / "colors.txt", "-t", 30, "--refine", "none"]
        assert dltools_main([str(a) for a in [*args, "--out-dir", tmp_path / out]]) == 0
    same = [scipy.io.loadmat(tmp_path / o / "coast_01_ares_30.mat")["class"] for o in "ab"]
    assert (same[0] == same[1]).mean() > 0.99


# --- folder runs ---------------------------------------------------------------------------


def truncated_copy(source: Path, target: Path) -> Path:
    """``target``: the first half of ``source``'s bytes (a download cut short)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def test_folder_runs_keep_going_skip_finished_images_and_leave_no_partial_outputs(
    ortho: dict, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a", "c"):
        (folder / f"{name}.jpg").write_bytes((DEMO / "images" / "coast_01.jpg").read_bytes())
    truncated_copy(DEMO / "images" / "coast_02.jpg", folder / "b.jpg")
    out = tmp_path / "out"
    assert segment_photo(ortho, folder, out) == 2  # stops at b
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "b.jpg" in err
    assert sorted(p.name for p in out.iterdir()) == ["a_ares_30.mat", "a_ares_30.png"]
    a_time = (out / "a_ares_30.mat").stat().st_mtime_ns
    assert segment_photo(ortho, folder, out, "--keep-going", "--skip-existing") == 2
    captured = capsys.readouterr()
    assert "a.jpg: outputs exist, skipped" in captured.out
    assert "1 of 3 failed" in captured.err and "b.jpg" in captured.err
    assert (out / "a_ares_30.mat").stat().st_mtime_ns == a_time  # not recomputed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_ares_30.mat", "a_ares_30.png", "c_ares_30.mat", "c_ares_30.png"]
    # a failure after the first file of an image: that image's files go, others stay
    (out / "c_ares_30.png").unlink()  # as a killed run leaves it: .mat but no figure

    def broken(fig, path):
        raise OSError("disk full")

    monkeypatch.setattr("dltools.pipeline.segment.save_figure", broken)
    with pytest.raises(OSError, match="disk full"):
        segment_photo(ortho, folder / "c.jpg", out, "--skip-existing")
    assert sorted(p.name for p in out.iterdir()) == ["a_ares_30.mat", "a_ares_30.png"]


def test_vector_output_needs_a_georeferenced_image(ortho: dict, tmp_path: Path, capsys) -> None:
    args = ["segment", DEMO / "images" / "coast_01.jpg", "-m", ortho["model"], "-l"]
    args += [DEMO / "labels.txt", "-c", DEMO / "colors.txt", "--vector", "--out-dir", tmp_path]
    assert dltools_main([str(a) for a in args]) == 2
    assert "not georeferenced: " in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
