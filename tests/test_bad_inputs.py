"""Every bad input of every step, in one table (issue 12): exit status 2, one ``error:`` line
naming the file or option at fault, and not one file written or changed.

Each case runs the command line in-process (``dltools.cli.main``) on a shared workspace of
small bad files; the whole workspace is snapshotted (names, sizes, modification times) before
and after.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from dltools.cli import main as dltools_main
from dltools.io.images import read_image, write_image
from dltools.io.labels import write_colors, write_labels
from dltools.raster.bands import RGB8, BandChoice

DEMO = Path(__file__).resolve().parents[1] / "demo_data"
NAMES = (DEMO / "labels.txt").read_text().split()


def _geotiff(path: Path, image: np.ndarray, crs: str | None) -> None:
    height, width = image.shape[:2]
    profile = {"driver": "GTiff", "width": width, "height": height, "count": image.shape[2]}
    profile |= {"dtype": image.dtype.name}
    if crs is not None:
        # 1-m pixels from (500000, 4000000); rasterio's from_origin warns (affine's `*`)
        profile |= {"crs": crs, "transform": rasterio.Affine(1, 0, 500000, 0, -1, 4000000)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(image, -1, 0))


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace: one folder per situation, each a small set of files."""
    root = tmp_path_factory.mktemp("bad")
    photo = read_image(DEMO / "images" / "coast_01.jpg")[:128, :192]
    label = read_image(DEMO / "labels" / "coast_01_label.png")[:128, :192]
    write_labels(root / "labels.txt", NAMES)
    write_colors(root / "colors.txt", np.zeros((len(NAMES), 3), np.uint8))
    write_colors(root / "colors_short.txt", np.zeros((2, 3), np.uint8))
    (root / "notes.txt").write_text("not an image\n")

    def folder(name: str, image: np.ndarray | None = None, suffix: str = ".png") -> Path:
        path = root / name
        path.mkdir()
        if image is not None:
            write_image(path / f"a{suffix}", image)
            write_image(path / "a_label.png", label)
        return path

    folder("good", photo)
    folder("rgba", np.concatenate([photo, np.full((128, 192, 1), 255, np.uint8)], axis=2))
    folder("deep", photo.astype(np.uint16) * 257, ".tif")
    folder("empty")
    folder("unlabelled")
    write_image(root / "unlabelled" / "a.png", photo)
    corrupt = folder("corrupt")
    (corrupt / "a.jpg").write_bytes(os.urandom(2000))
    write_image(corrupt / "a_label.png", label)
    truncated = folder("truncated_label", photo)
    data = (truncated / "a_label.png").read_bytes()
    (truncated / "a_label.png").write_bytes(data[: len(data) // 2])
    fractional = folder("fractional_label", photo)
    (fractional / "a_label.png").unlink()
    write_image(fractional / "a_label.tif", label.astype(np.float32) + 0.5)
    done = folder("done", photo)
    (done / "tile_32").mkdir()
    (done / "tile_32" / "tiles.csv").write_text("tile,image,row,col,class,purity\n")
    # models: a SavedModel folder whose record says 3-band uint8 (checked before loading)
    model = root / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"")
    (model / "dltools.json").write_text(json.dumps({"class_names": NAMES, "bands": RGB8.to_dict()}))
    # FCN runs (checked before loading): one of 3-band uint8 input, one of 4-band uint16
    labeldefs = "".join(f"{name}, {i}, {i}, {i}\n" for i, name in enumerate(NAMES))
    for name, bands in (("fcn_run", RGB8), ("fcn_run_uint16", BandChoice((3, 2, 1), 4, "uint16"))):
        run = root / name
        run.mkdir()
        config = {"format": "dltools-fcn-run", "classes": NAMES, "bands": bands.to_dict()}
        (run / "config.json").write_text(json.dumps(config))
        (run / "labeldefs.txt").write_text(labeldefs)
    # step 2 inputs
    geo = folder("geo")
    _geotiff(geo / "ortho.tif", photo, "EPSG:32610")
    _geotiff(geo / "plain.tif", photo, None)
    far = {"type": "LineString", "coordinates": [[10.0, 10.0], [10.001, 10.001]]}
    feature = {"type": "Feature", "properties": {"class": NAMES[0]}, "geometry": far}
    (geo / "far.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature]})
    )
    write_image(geo / "doodles.png", (label > 0).astype(np.uint8)[..., 0])
    doubled = np.kron(label[..., 0] > 0, np.ones((2, 2), bool)).astype(np.uint8)
    write_image(geo / "doodles_double.png", doubled)
    nan = folder("nan")
    image = photo.astype(np.float32)
    image[:] = np.nan
    _geotiff(nan / "a.tif", image, None)
    write_image(nan / "a_label.png", label)
    # existing outputs of steps 2 and 6
    out = folder("out")
    (out / "a_mres.mat").write_bytes(b"earlier")
    (out / "a_ares_32.mat").write_bytes(b"earlier")
    # step 7: a prediction without a manual label
    preds = folder("preds")
    write_image(preds / "zz_ares_32.png", label)
    # step 5: a tile library with one class
    tiles = root / "one_class" / "water"
    tiles.mkdir(parents=True)
    write_image(tiles / "t.jpg", photo[:32, :32])
    return root


def _segment(*extra: str) -> list[str]:
    return [
        "-m",
        "{ws}/model",
        "-l",
        "{ws}/labels.txt",
        "-c",
        "{ws}/colors.txt",
        "-t",
        "32",
        *extra,
    ]


def _fcn_train(*extra: str, data: str = "{ws}/good", weights: str = "none") -> list[str]:
    args = ["fcn", "train", "--name", "{ws}/new_run", "--data-dir", data, "-l", "{ws}/labels.txt"]
    return [*args, "--encoder-weights", weights, *extra]


def _label(image: str, *extra: str) -> list[str]:
    return ["label", "-i", image, "-l", "{ws}/labels.txt", "-c", "{ws}/colors.txt", *extra]


def _retile(folder: str, *extra: str) -> list[str]:
    return ["retile", "-i", folder, "-l", "{ws}/labels.txt", "-t", "32", *extra]


def _auto_size(folder: str) -> list[str]:
    return ["retile", "-i", folder, "-l", "{ws}/labels.txt"]


def _infer(command: str, samples: str, *extra: str) -> list[str]:
    run = ["fcn", command, "--name", "{ws}/fcn_run", "--samples-dir", samples]
    return [*run, "--output-dir", "{ws}/fcn_out", *extra]


# (id, command line with {ws} for the workspace, text the error must name)
CASES = [
    # step 1: split
    ("split-missing-folder", ["split", "-i", "{ws}/nowhere"], "nowhere"),
    ("split-empty-folder", ["split", "-i", "{ws}/empty"], "empty"),
    ("split-proportion-out-of-range", ["split", "-i", "{ws}/good", "-p", "1.5"], "-p"),
    ("split-dialog-became-i", ["split", "-p", "0.5"], "-i"),
    # step 2: label
    ("label-missing-image", _label("{ws}/nowhere.jpg", "--doodles", "x.png"), "nowhere.jpg"),
    ("label-not-an-image", _label("{ws}/notes.txt", "--doodles", "x.png"), "notes.txt"),
    ("label-corrupt-image", _label("{ws}/corrupt/a.jpg", "--doodles", "x.png"), "a.jpg"),
    (
        "label-labels-colours-mismatch",
        ["label", "-i", "{ws}/good/a.png", "-l", "{ws}/labels.txt", "-c", "{ws}/colors_short.txt"],
        "colors_short.txt",
    ),
    ("label-no-display", _label("{ws}/good/a.png"), "DISPLAY"),
    ("label-dialog-became-i", ["label", "-l", "{ws}/labels.txt", "-c", "{ws}/colors.txt"], "-i"),
    (
        "label-geojson-outside-image",
        _label("{ws}/geo/ortho.tif", "--doodles", "{ws}/geo/far.geojson"),
        "far.geojson",
    ),
    (
        "label-geojson-on-image-without-crs",
        _label("{ws}/geo/plain.tif", "--doodles", "{ws}/geo/far.geojson"),
        "georeferenced",
    ),
    (
        "label-scale-out-of-range",
        _label("{ws}/geo/ortho.tif", "--doodles", "{ws}/geo/doodles.png", "-s", "1.5"),
        "-s",
    ),
    (
        "label-strokes-larger-than-the-image-in-windows",
        _label("{ws}/geo/ortho.tif", "--doodles", "{ws}/geo/doodles_double.png", "--block", "64"),
        "doodles_double.png",
    ),
    (
        "label-block-too-small",
        _label("{ws}/geo/ortho.tif", "--doodles", "{ws}/geo/doodles.png", "--block", "8"),
        "--block",
    ),
    (
        "label-existing-outputs",
        _label("{ws}/good/a.png", "--doodles", "{ws}/geo/doodles.png", "--out-dir", "{ws}/out"),
        "--force",
    ),
    # step 3: retile
    ("retile-missing-folder", _retile("{ws}/nowhere"), "nowhere"),
    ("retile-dialog-became-i", ["retile", "-t", "32"], "-i"),
    ("retile-no-labelled-images", _retile("{ws}/unlabelled"), "no image has a label"),
    ("retile-empty-folder", _retile("{ws}/empty"), "no image has a label"),
    ("retile-keep-out-of-range", _retile("{ws}/good", "-b", "1.5"), "-b"),
    ("retile-purity-out-of-range", _retile("{ws}/good", "-a", "1"), "-a"),
    ("retile-class-cap-below-one", _retile("{ws}/good", "--max-ratio", "0.5"), "--max-ratio"),
    ("retile-tile-larger-than-every-image", _retile("{ws}/good", "-t", "2000"), "-t 2000"),
    ("retile-rgba-without-bands", _retile("{ws}/rgba"), "--bands"),
    ("retile-bands-not-three", _retile("{ws}/good", "--bands", "1,2"), "--bands"),
    ("retile-bands-beyond-the-image", _retile("{ws}/good", "--bands", "1,2,5"), "5"),
    ("retile-bad-stretch", _retile("{ws}/deep", "--stretch", "9,1"), "--stretch"),
    ("retile-corrupt-image", _retile("{ws}/corrupt"), "a.jpg"),
    ("retile-truncated-label", _retile("{ws}/truncated_label"), "truncated"),
    ("retile-fractional-label", _retile("{ws}/fractional_label"), "a_label.tif"),
    ("retile-nan-image", _retile("{ws}/nan"), "NaN"),
    ("retile-raster-labels-need-l", ["retile", "-i", "{ws}/good", "-t", "32"], "-l labels.txt"),
    # without -t the label maps are read first, to choose the tile size: the same refusals
    ("retile-auto-size-no-labelled-images", _auto_size("{ws}/unlabelled"), "no image has a label"),
    ("retile-auto-size-truncated-label", _auto_size("{ws}/truncated_label"), "truncated"),
    ("retile-auto-size-fractional-label", _auto_size("{ws}/fractional_label"), "a_label.tif"),
    ("retile-auto-size-raster-labels-need-l", ["retile", "-i", "{ws}/good"], "-l labels.txt"),
    ("retile-existing-library", _retile("{ws}/done"), "--force"),
    # step 4: retrain
    (
        "retrain-missing-tiles",
        [
            "retrain",
            "--image_dir",
            "{ws}/nowhere",
            "--tfhub_module",
            "scratch",
            "--output_graph",
            "{ws}/m",
            "--output_labels",
            "{ws}/l.txt",
        ],
        "nowhere",
    ),
    (
        "retrain-one-class",
        [
            "retrain",
            "--image_dir",
            "{ws}/one_class",
            "--tfhub_module",
            "scratch",
            "--output_graph",
            "{ws}/m",
            "--output_labels",
            "{ws}/l.txt",
        ],
        "one_class",
    ),
    (
        "retrain-steps-out-of-range",
        [
            "retrain",
            "--image_dir",
            "{ws}/one_class",
            "--tfhub_module",
            "scratch",
            "--output_graph",
            "{ws}/m",
            "--output_labels",
            "{ws}/l.txt",
            "--how_many_training_steps",
            "0",
        ],
        "--how_many_training_steps",
    ),
    # step 5: eval-tiles
    (
        "eval-tiles-missing-folder",
        ["eval-tiles", "-i", "{ws}/nowhere", "-l", "{ws}/labels.txt", "-m", "{ws}/model"],
        "nowhere",
    ),
    # step 6: segment
    ("segment-not-an-image", ["segment", "{ws}/notes.txt", *_segment()], "notes.txt"),
    ("segment-corrupt-image", ["segment", "{ws}/corrupt/a.jpg", *_segment()], "a.jpg"),
    ("segment-empty-folder", ["segment", "{ws}/empty", *_segment()], "empty"),
    ("segment-rgba-without-bands", ["segment", "{ws}/rgba/a.png", *_segment()], "--bands"),
    ("segment-16-bit-for-8-bit-model", ["segment", "{ws}/deep/a.tif", *_segment()], "uint16"),
    (
        "segment-missing-model",
        [
            "segment",
            "{ws}/good/a.png",
            "-m",
            "{ws}/no_model",
            "-l",
            "{ws}/labels.txt",
            "-c",
            "{ws}/colors.txt",
        ],
        "no_model",
    ),
    (
        "segment-labels-colours-mismatch",
        [
            "segment",
            "{ws}/good/a.png",
            "-m",
            "{ws}/model",
            "-l",
            "{ws}/labels.txt",
            "-c",
            "{ws}/colors_short.txt",
        ],
        "colors_short.txt",
    ),
    (
        "segment-prob-thres-out-of-range",
        ["segment", "{ws}/good/a.png", *_segment("--prob-thres", "2")],
        "PROB_THRES",
    ),
    (
        "segment-block-below-tile",
        ["segment", "{ws}/good/a.png", *_segment("--block", "16")],
        "--block",
    ),
    (
        "segment-existing-outputs",
        ["segment", "{ws}/good/a.png", *_segment("--out-dir", "{ws}/out")],
        "--force",
    ),
    # step 7: eval-pixels
    (
        "eval-pixels-unmatched-predictions",
        [
            "eval-pixels",
            "-i",
            "{ws}/preds",
            "--pred-glob",
            "*_ares_32.png",
            "--true-dir",
            "{ws}/good",
            "--true-glob",
            "*_label.png",
            "-l",
            "{ws}/labels.txt",
        ],
        "zz_ares_32.png",
    ),
    ("eval-pixels-missing-folder", ["eval-pixels", "-i", "{ws}/nowhere"], "nowhere"),
    # step 8: fcn
    (
        "fcn-infer-not-a-run",
        [
            "fcn",
            "infer",
            "--name",
            "{ws}/good",
            "--samples-dir",
            "{ws}/good/a.png",
            "--output-dir",
            "{ws}/fcn_out",
        ],
        "config.json",
    ),
    (
        "fcn-infer-rgba-without-bands",
        _infer("infer", "{ws}/rgba/a.png"),
        "--bands",
    ),
    (
        "fcn-infer-ensemble-of-other-input-bands",
        _infer("infer", "{ws}/good/a.png", "--name", "{ws}/fcn_run", "{ws}/fcn_run_uint16"),
        "fcn_run_uint16: its input bands",
    ),
    (
        "fcn-infer-window-not-a-multiple-of-32",
        _infer("infer", "{ws}/good/a.png", "--window", "100"),
        "--window",
    ),
    (
        "fcn-infer-crf-block-below-the-stride",
        _infer("infer-crf", "{ws}/good/a.png", "--block", "0"),
        "--block",
    ),
    (
        "fcn-train-tile-size",
        _fcn_train("--tile-size", "100"),
        "--tile-size",
    ),
    (
        "fcn-train-strokes-from-label-rasters",
        _fcn_train("--train-on", "strokes"),
        "strokes come from",
    ),
    (
        "fcn-train-crf-weight-without-strokes",
        _fcn_train("--crf-weight", "0.3"),
        "--crf-weight",
    ),
    (
        "fcn-train-rgba-without-bands",
        _fcn_train(data="{ws}/rgba"),
        "--bands",
    ),
    (
        "fcn-train-missing-weights",
        _fcn_train(weights="{ws}/nowhere.h5"),
        "nowhere.h5",
    ),
]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime)}`` of everything under ``root``."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(("args", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(
    ws: Path, args: list[str], named: str, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.chdir(ws)
    before = snapshot(ws)
    status = dltools_main([a.format(ws=ws) for a in args])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert named in err, err
    assert snapshot(ws) == before


def test_the_readme_counts_these_cases() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"{len(CASES)} bad inputs" in readme
