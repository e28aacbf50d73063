"""dltools.synthetic.scenes (beach scenes, simulated strokes) and the committed demo data."""

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.transform import rowcol
from rasterio.warp import transform as warp_transform

from dltools.io.images import read_image
from dltools.io.labels import read_classes, read_labeldefs
from dltools.synthetic.scenes import (
    CLASS_COLORS,
    CLASS_NAMES,
    DRYSAND,
    FOAM,
    VEG,
    WATER,
    WETSAND,
    coastal_scene,
    simulate_strokes,
    stroke_paths,
)

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"


def _load_generator():
    spec = importlib.util.spec_from_file_location("demo_generate", DEMO / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


@pytest.fixture(scope="module")
def scene():
    return coastal_scene(512, 768)


def class_mean_accuracy(rgb: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of labelling each pixel with the class whose mean colour is nearest."""
    pixels = rgb.reshape(-1, 3).astype(np.float64)
    truth = labels.ravel()
    classes = np.unique(truth)
    means = np.array([pixels[truth == k].mean(axis=0) for k in classes])
    distance = ((pixels[:, None, :] - means[None]) ** 2).sum(axis=-1)
    return float(np.mean(classes[distance.argmin(axis=1)] == truth))


# --- scenes -------------------------------------------------------------------------------


def test_scene_shapes_dtypes_and_determinism():
    rgb, labels = coastal_scene(200, 300, seed=7)
    assert rgb.shape == (200, 300, 3) and rgb.dtype == np.uint8
    assert labels.shape == (200, 300) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= set(range(1, 7))
    again_rgb, again_labels = coastal_scene(200, 300, seed=7)
    assert np.array_equal(rgb, again_rgb) and np.array_equal(labels, again_labels)
    other_rgb, other_labels = coastal_scene(200, 300, seed=8)
    assert not np.array_equal(labels, other_labels)
    assert np.abs(rgb.astype(int) - other_rgb).mean() > 10


def test_default_scene_holds_every_class(scene):
    _, labels = scene
    share = np.bincount(labels.ravel(), minlength=7)[1:] / labels.size
    assert (share > 0.003).all(), dict(zip(CLASS_NAMES, share.round(4), strict=True))
    assert share[WATER - 1] > 0.1 and share[DRYSAND - 1] > 0.1  # a beach, not a road map


def test_most_scenes_hold_every_class():
    complete = 0
    for seed in range(10):
        _, labels = coastal_scene(128, 192, seed=seed)
        complete += np.unique(labels).size == 6
    assert complete >= 7


def test_layout_does_not_depend_on_size():
    """Same seed, two sizes: the same beach (zone shares agree), only textures differ."""
    small = np.bincount(coastal_scene(160, 240, seed=3)[1].ravel(), minlength=7)[1:] / 160 / 240
    large = np.bincount(coastal_scene(480, 720, seed=3)[1].ravel(), minlength=7)[1:] / 480 / 720
    assert np.abs(small - large).max() < 0.06


def test_classes_look_like_a_beach(scene):
    rgb, labels = scene
    mean = {k: rgb[labels == k].astype(float).mean(axis=0) for k in range(1, 7)}
    brightness = {k: m.mean() for k, m in mean.items()}
    assert mean[WATER][2] > mean[WATER][0]  # water is blue
    assert mean[VEG][1] > mean[VEG][2]  # plants are green rather than blue
    assert brightness[DRYSAND] > brightness[WETSAND] > brightness[WATER]
    assert brightness[FOAM] > brightness[WATER] + 40


def test_colour_separates_classes_only_partly(scene):
    """Nearest-class-mean colour: well above chance, far from perfect.

    Six classes with these shares give about 0.35 by always answering the largest class.
    The scenes are made so that colour alone confuses wet sand near the swash with shallow
    water, foam with glints and bright sand, sparse plants with shaded sand and a sand track
    with dry sand: measured 0.70-0.87 over seeds 0-5, so a classifier must use texture and
    context to do well, but colour carries real signal.
    """
    rgb, labels = scene
    assert 0.6 <= class_mean_accuracy(rgb, labels) <= 0.95


def test_full_frame_scene():
    """A camera-sized frame; benchmarks generate up to 36 MP (measured: seconds, ~1.5 GB)."""
    start = time.perf_counter()
    rgb, labels = coastal_scene(1960, 3008, seed=1)
    assert time.perf_counter() - start < 15  # about 1 s: a generous bound for busy machines
    assert rgb.shape == (1960, 3008, 3)
    assert np.unique(labels).size >= 5


# --- strokes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stroked(scene):
    _, labels = scene
    labels = labels.copy()
    labels[:, :60] = 0  # an unlabelled margin, as in real label rasters
    return labels, simulate_strokes(labels, fraction=0.02, width=3, margin=6, seed=4)


def test_strokes_are_deterministic_sparse_uint8(stroked):
    labels, strokes = stroked
    assert strokes.shape == labels.shape and strokes.dtype == np.uint8
    again = simulate_strokes(labels, fraction=0.02, width=3, margin=6, seed=4)
    assert np.array_equal(strokes, again)
    assert not np.array_equal(strokes, simulate_strokes(labels, margin=6, seed=5))


def test_strokes_lie_inside_their_class_away_from_edges(stroked):
    labels, strokes = stroked
    drawn = strokes > 0
    assert np.array_equal(strokes[drawn], labels[drawn])
    for k in np.unique(strokes[drawn]):
        inside = (labels == k).astype(np.uint8)
        depth = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        assert depth[strokes == k].min() >= 6 - 1, CLASS_NAMES[k - 1]


def test_strokes_cover_the_requested_fraction_in_every_class(stroked):
    labels, strokes = stroked
    covered = np.count_nonzero(strokes) / np.count_nonzero(labels)
    assert 0.5 * 0.02 <= covered <= 2 * 0.02
    # every class roomy enough for a stroke (centre line 6 + 1.5 + 2 px inside) gets one
    for k in range(1, 7):
        depth = cv2.distanceTransform((labels == k).astype(np.uint8), cv2.DIST_L2, 5)
        if depth.max() > 12:
            assert np.count_nonzero(strokes == k) >= 10, CLASS_NAMES[k - 1]
    # shared fairly: the rarest stroked class gets far more than its area share
    counts = np.bincount(strokes.ravel(), minlength=7)[1:]
    areas = np.bincount(labels.ravel(), minlength=7)[1:]
    rare = np.argmin(np.where(counts > 0, areas, labels.size))
    assert counts[rare] / counts.sum() > 1.5 * areas[rare] / areas.sum()


def test_rare_and_tiny_classes():
    labels = np.ones((400, 600), np.uint8)
    labels[:, 300:] = 2
    labels[100:160, 100:160] = 3  # rare but roomy: must be stroked
    labels[300:310, 400:410] = 4  # too small for a stroke 10 px inside: skipped
    strokes = simulate_strokes(labels, fraction=0.01, width=3, margin=10, seed=0)
    counts = np.bincount(strokes.ravel(), minlength=5)
    assert counts[1] > 0 and counts[2] > 0 and counts[3] > 0 and counts[4] == 0
    assert not simulate_strokes(np.zeros((50, 50), np.uint8)).any()


def test_stroke_paths_are_the_drawn_centre_lines(stroked):
    labels, strokes = stroked
    paths = stroke_paths(labels, fraction=0.02, width=3, margin=6, seed=4)
    canvas = np.zeros_like(strokes)
    for k, points in paths:
        assert points.ndim == 2 and points.shape[1] == 2 and len(points) >= 2
        cv2.polylines(canvas, [points.reshape(-1, 1, 2)], False, int(k), thickness=3)
    assert np.array_equal(canvas, strokes)
    assert len({k for k, _ in paths}) == len(np.unique(strokes)) - 1


# --- the committed demo data ---------------------------------------------------------------


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    subprocess.run(
        [sys.executable, str(DEMO / "generate.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def test_demo_files_exist_and_are_small():
    paths = generate.output_paths(DEMO)
    missing = [str(p) for p in paths if not p.is_file()]
    assert not missing, "run: python demo_data/generate.py --force"
    sizes = [p.stat().st_size for p in paths]
    assert sum(sizes) < 4e6 and max(sizes) < 1.5e6


def test_generator_reproduces_the_committed_files(regenerated):
    for committed in generate.output_paths(DEMO):
        fresh = regenerated / committed.relative_to(DEMO)
        if committed.suffix == ".jpg":  # lossy: identical with the pinned libjpeg, close anyway
            difference = np.abs(read_image(committed).astype(int) - read_image(fresh))
            assert difference.mean() < 0.5, committed.name
        else:
            assert committed.read_bytes() == fresh.read_bytes(), committed.name


def test_demo_generator_refuses_to_overwrite(regenerated):
    result = subprocess.run(
        [sys.executable, str(DEMO / "generate.py"), "--out", str(regenerated)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--force" in result.stderr


def test_demo_class_files():
    names, colors = read_classes(DEMO / "labels.txt", DEMO / "colors.txt")
    assert names == list(CLASS_NAMES) and np.array_equal(colors, CLASS_COLORS)
    names, colors = read_labeldefs(DEMO / "labeldefs.txt")
    assert names == list(CLASS_NAMES) and np.array_equal(colors, CLASS_COLORS)


def test_demo_photos_labels_and_doodles():
    for path in sorted((DEMO / "images").glob("*.jpg")):
        rgb = read_image(path)
        labels = read_image(DEMO / "labels" / f"{path.stem}_label.png")[..., 0]
        assert rgb.shape == (512, 768, 3) and labels.shape == (512, 768)
        assert set(np.unique(labels)) <= set(range(1, 7))
    labels = read_image(DEMO / "labels" / "coast_01_label.png")[..., 0]
    doodles = read_image(DEMO / "doodles" / "coast_01_doodles.png")[..., 0]
    drawn = doodles > 0
    assert np.array_equal(doodles[drawn], labels[drawn])
    assert set(np.unique(doodles[drawn])) == set(range(1, 7))


def test_demo_orthomosaic_is_a_proper_geotiff():
    with rasterio.open(DEMO / "geotiff" / "coast_ortho.tif") as src:
        assert src.crs.to_epsg() == 32610 and src.res == (0.1, 0.1)
        assert src.count == 3 and src.dtypes[0] == "uint8" and src.nodata == 0
        assert src.block_shapes[0] == (256, 256)
        assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
        assert src.compression.name.lower() == "deflate"
        rgb = np.moveaxis(src.read(), 0, -1)
        transform = src.transform
    with rasterio.open(DEMO / "geotiff" / "coast_ortho_label.tif") as src:
        assert src.transform == transform and src.crs.to_epsg() == 32610 and src.nodata == 0
        labels = src.read(1)
    valid = rgb.any(axis=-1)
    assert 0.3 < valid.mean() < 0.9  # an irregular footprint inside the square
    assert np.array_equal(valid, labels > 0)  # no valid pixel is (0, 0, 0)
    assert set(np.unique(labels[valid])) == set(range(1, 7))


def test_demo_geojson_strokes_are_lon_lat_lines_inside_their_class():
    collection = json.loads((DEMO / "doodles" / "coast_ortho_doodles.geojson").read_text())
    assert collection["type"] == "FeatureCollection" and "crs" not in collection
    with rasterio.open(DEMO / "geotiff" / "coast_ortho_label.tif") as src:
        labels, transform = src.read(1), src.transform
    found = set()
    for feature in collection["features"]:
        assert feature["geometry"]["type"] == "LineString"
        lon, lat = np.array(feature["geometry"]["coordinates"]).T
        assert (-121.9 < lon).all() and (lon < -121.7).all() and (36.6 < lat).all()
        assert (lat < 36.8).all()
        xs, ys = warp_transform("EPSG:4326", "EPSG:32610", lon, lat)
        rows, cols = rowcol(transform, xs, ys)
        k = CLASS_NAMES.index(feature["properties"]["class"]) + 1
        assert (labels[rows, cols] == k).all()
        found.add(k)
    assert found == set(range(1, 7))
