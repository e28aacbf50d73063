"""Step 2 end to end: replaying strokes through the command line on the demo data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from gis_checks import (
    assert_cog,
    assert_continuous_style,
    assert_styled_classes,
    assert_vector_matches,
)

from dltools.cli.label import main, main_geotiff
from dltools.io.geo import read_profile
from dltools.io.images import read_image, write_image
from dltools.io.labels import read_classes, read_labels
from dltools.io.results import read_result
from dltools.io.vectors import read_layer

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"
PHOTO = DEMO / "images" / "coast_01.jpg"
TRUTH = DEMO / "labels" / "coast_01_label.png"
DOODLES = DEMO / "doodles" / "coast_01_doodles.png"
ORTHO = DEMO / "geotiff" / "coast_ortho.tif"
CLASSES = ["-l", str(DEMO / "labels.txt"), "-c", str(DEMO / "colors.txt")]
NAMES = read_labels(DEMO / "labels.txt")


def label_photo(out_dir: Path, *extra: str, doodles: Path = DOODLES, image: Path = PHOTO) -> int:
    args = ["-i", str(image), *CLASSES, "--doodles", str(doodles), "--out-dir", str(out_dir)]
    return main([*args, *extra])


@pytest.fixture(scope="module")
def photo_outputs(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("photo")
    assert label_photo(out_dir, "--confidence") == 0
    return out_dir


def test_replayed_strokes_give_a_dense_label_image_close_to_the_truth(photo_outputs: Path) -> None:
    result = read_result(photo_outputs / "coast_01_mres.mat")
    truth = read_image(TRUTH)[..., 0].astype(int) - 1
    doodles = read_image(DOODLES)[..., 0]
    assert result.labels == NAMES
    assert result.class_map.shape == truth.shape
    np.testing.assert_array_equal(result.sparse, doodles)  # `sparse` holds the strokes as given
    agreement = np.mean(result.class_map == truth)
    assert agreement > 0.9, f"CRF labels agree with the truth on only {agreement:.3f} of pixels"
    height, width = truth.shape
    assert result.preds.shape == (round(height * 0.2), round(width * 0.2), len(NAMES))
    np.testing.assert_allclose(result.preds.sum(axis=2), 1.0, atol=0.02)
    label_png = read_image(photo_outputs / "coast_01_mres_label.png")[..., 0]
    np.testing.assert_array_equal(label_png, result.class_map + 1)


def test_figure_report_and_confidence_are_written(photo_outputs: Path) -> None:
    figure = read_image(photo_outputs / "coast_01_mres.png")
    assert figure.shape[1] > 1000 and figure.std() > 10  # three panels, not a blank canvas
    report = (photo_outputs / "coast_01_report.txt").read_text()
    assert "coast_01.jpg" in report and "768 x 512 pixels" in report
    fractions = [float(line.split()[-1]) for line in report.splitlines() if line.startswith("  ")]
    assert len(fractions) == len(NAMES) and sum(fractions) == pytest.approx(1.0, abs=1e-3)
    assert "minutes painting: 0.00" in report and "minutes computing:" in report
    confidence = read_image(photo_outputs / "coast_01_mres_confidence.png")[..., 0]
    assert confidence.shape == (512, 768) and confidence.min() >= 255 // len(NAMES)
    assert not list(photo_outputs.glob(".*"))  # no temporary files left behind


def test_outputs_are_never_silently_overwritten(photo_outputs: Path, capsys) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in photo_outputs.iterdir()}
    assert label_photo(photo_outputs) == 2
    assert "--force" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in photo_outputs.iterdir()} == before


def test_a_labelling_reruns_from_its_mat_with_other_crf_settings(photo_outputs, tmp_path) -> None:
    mat = photo_outputs / "coast_01_mres.mat"
    assert label_photo(tmp_path, "--theta", "20", "--iters", "5", doodles=mat) == 0
    first, again = read_result(mat), read_result(tmp_path / "coast_01_mres.mat")
    np.testing.assert_array_equal(again.sparse, first.sparse)
    assert "theta=20.0" in (tmp_path / "coast_01_report.txt").read_text()


def test_geotiff_in_geotiff_out_with_strokes_from_geojson(tmp_path: Path) -> None:
    script = REPO / "create_groundtruth" / "label_1geotiff_crf.py"
    geojson = DEMO / "doodles" / "coast_ortho_doodles.geojson"
    args = ["-i", str(ORTHO), *CLASSES, "-s", "0.5", "--doodles", str(geojson)]
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            *args,
            "--out-dir",
            str(tmp_path),
            "--confidence",
            "--vector",
            "--uncertainty",
            "--check",
            "3",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with rasterio.open(ORTHO) as src, rasterio.open(tmp_path / "coast_ortho_mres_geo.tif") as dst:
        assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
        assert dst.nodata == 0 and dst.count == 1
        labels, valid = dst.read(1), src.dataset_mask() > 0
    with rasterio.open(DEMO / "geotiff" / "coast_ortho_label.tif") as truth_src:
        truth = truth_src.read(1)
    assert (labels[~valid] == 0).all() and (labels[valid] > 0).all()
    agreement = np.mean(labels[valid] == truth[valid])
    assert agreement > 0.9, f"GeoTIFF labels agree with the truth on only {agreement:.3f}"
    with rasterio.open(tmp_path / "coast_ortho_mres_confidence.tif") as conf:
        confidence = conf.read(1)
        assert conf.crs == src.crs and conf.dtypes[0] == "float32"
    assert np.isnan(confidence[~valid]).all()
    assert confidence[valid].min() >= 1 / len(NAMES) - 0.01  # no sag at the footprint's edge
    for raster in ("coast_ortho_mres_geo.tif", "coast_ortho_mres_confidence.tif"):
        assert_cog(tmp_path / raster)
    assert_styled_classes(tmp_path / "coast_ortho_mres_geo.tif", read_classes(*CLASSES[1::2]))
    assert_continuous_style(tmp_path / "coast_ortho_mres_confidence.tif")
    gpkg = tmp_path / "coast_ortho_mres_geo.gpkg"
    assert_vector_matches(gpkg, tmp_path / "coast_ortho_mres_geo.tif", confidence=True)
    result = read_result(tmp_path / "coast_ortho_mres.mat")
    assert (result.class_map[~valid] == -1).all()
    # labelling guidance: the uncertainty COG on the same grid, windows in the map's CRS
    uncertainty = tmp_path / "coast_ortho_uncertainty.tif"
    assert_cog(uncertainty)
    assert_continuous_style(uncertainty)
    with rasterio.open(uncertainty) as unc:
        assert (unc.crs, unc.transform, unc.shape) == (src.crs, src.transform, src.shape)
        values = unc.read(1)
    assert np.isnan(values[~valid]).all() and 0 <= np.nanmin(values) < np.nanmax(values) <= 1
    outlines, fields, crs = read_layer(tmp_path / "coast_ortho_next.geojson")
    assert crs == src.crs and list(fields["rank"]) == list(range(1, len(outlines) + 1))
    left, bottom, right, top = src.bounds
    for outline in outlines:
        x0, y0, x1, y1 = outline.bounds
        assert left <= x0 < x1 <= right and bottom <= y0 < y1 <= top
    report = (tmp_path / "coast_ortho_report.txt").read_text()
    assert "stroke cross-validation (3 folds" in report and "stroke cross-validation" in done.stdout


def test_a_geotiff_larger_than_a_block_is_labelled_in_windows_as_it_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The demo GeoTIFF (900 px) with --block 320 at -s 0.5: a coarse pass read in 256-px
    windows, then 3 x 3 windows with 248 px of context (twice theta 60 at the working scale,
    the median filter and a working pixel, on the working grid), so that no read is of the
    whole image and no CRF sees more than 816 px; the labels are those of the image labelled
    whole, on the same grid and nodata, and the confidence, uncertainty and ranking stream
    to their files."""
    import dltools.engines.crf as crf
    import dltools.pipeline.label as label

    geojson = DEMO / "doodles" / "coast_ortho_doodles.geojson"
    args = ["-i", str(ORTHO), *CLASSES, "-s", "0.5", "--doodles", str(geojson)]
    args += ["--confidence", "--uncertainty", "--check", "3"]
    saved = ["--save-strokes", str(tmp_path / "whole" / "strokes.gpkg")]
    assert main_geotiff([*args, *saved, "--out-dir", str(tmp_path / "whole")]) == 0
    reads, labelled = [], []
    read_raster, label_from_strokes = label.read_raster, label.label_from_strokes
    monkeypatch.setattr(crf, "_COARSE_READ", 256)
    monkeypatch.setattr(
        label, "read_raster", lambda path, window: reads.append(window) or read_raster(path, window)
    )
    monkeypatch.setattr(
        label,
        "label_from_strokes",
        lambda image, *rest, **named: (
            labelled.append(image.shape[:2]) or label_from_strokes(image, *rest, **named)
        ),
    )
    capsys.readouterr()
    saved = ["--save-strokes", str(tmp_path / "windows" / "strokes.gpkg")]
    windowed = [*args, *saved, "--block", "320", "--out-dir", str(tmp_path / "windows")]
    assert main_geotiff(windowed) == 0
    # reads: the coarse pass's 16, the 9 windows', the check's 16 (on the image shrunk 5 times)
    assert max(max(w.height, w.width) for w in reads) == 816 and len(reads) == 16 + 9 + 16
    assert len(labelled) == 9 and max(max(shape) for shape in labelled) == 816
    printed = capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "windows").iterdir())
    assert names == sorted(
        p.name
        for p in (tmp_path / "whole").iterdir()
        if not p.name.endswith(("_mres.mat", "_mres_label.png"))
    )
    assert all(f"wrote {tmp_path / 'windows' / name}" in printed for name in names)
    with rasterio.open(ORTHO) as src:
        valid = src.dataset_mask() > 0
        grid = (src.crs, src.transform, src.shape)
    rasters = {}
    for name in ("mres_geo", "mres_confidence", "uncertainty"):
        path = tmp_path / "windows" / f"coast_ortho_{name}.tif"
        assert_cog(path)
        with rasterio.open(path) as dst, rasterio.open(tmp_path / "whole" / path.name) as ref:
            assert (dst.crs, dst.transform, dst.shape) == grid
            rasters[name] = dst.read(1), ref.read(1)
    windows, whole = rasters["mres_geo"]
    assert not windows[~valid].any() and windows[valid].min() >= 1
    agreement = np.mean(windows[valid] == whole[valid])
    assert agreement > 0.995, f"windows agree with the whole image on only {agreement:.4f}"
    for name in ("mres_confidence", "uncertainty"):
        values, reference = rasters[name]
        assert np.isnan(values[~valid]).all() and np.isfinite(values[valid]).all()
        assert np.mean(np.abs(values[valid] - reference[valid])) < 0.01
    assert_styled_classes(
        tmp_path / "windows" / "coast_ortho_mres_geo.tif", read_classes(*CLASSES[1::2])
    )
    ranked = (tmp_path / "windows" / "coast_ortho_next.csv").read_text().splitlines()
    assert len(ranked) == len(
        (tmp_path / "whole" / "coast_ortho_next.csv").read_text().splitlines()
    )
    report = (tmp_path / "windows" / "coast_ortho_report.txt").read_text()
    assert "labelled in 9 windows" in report
    # the stroke check at the same scale (0.2) says about what it says of the whole image
    agreements = [
        float(
            (tmp_path / run / "coast_ortho_report.txt")
            .read_text()
            .split("agreement ")[1]
            .split()[0]
        )
        for run in ("whole", "windows")
    ]
    assert abs(agreements[0] - agreements[1]) < 0.05, agreements
    # the strokes saved window by window are those saved whole, polygon for polygon
    from dltools.io.strokes import read_strokes

    replayed = [
        read_strokes(tmp_path / run / "strokes.gpkg", grid[2], NAMES, georef=read_profile(ORTHO))
        for run in ("whole", "windows")
    ]
    assert replayed[0].any() and np.array_equal(*replayed)
    assert len(read_layer(tmp_path / "windows" / "strokes.gpkg")[0]) == len(
        read_layer(tmp_path / "whole" / "strokes.gpkg")[0]
    )


def test_a_plain_photo_larger_than_a_block_is_labelled_in_windows_as_it_is_whole(
    tmp_path: Path,
) -> None:
    """A photo without georeferencing (768 x 512) with --block 256: no .mat or label PNG (which
    would need it whole), the labels in a TIFF without a CRS, those of the photo labelled
    whole."""
    assert label_photo(tmp_path / "whole", "-s", "0.5", "--confidence") == 0
    assert label_photo(tmp_path / "windows", "-s", "0.5", "--confidence", "--block", "256") == 0
    names = sorted(p.name for p in (tmp_path / "windows").iterdir())
    assert names == [
        f"coast_01_{end}"
        for end in (
            "mres.png", "mres_confidence.qml", "mres_confidence.tif", "mres_geo.qml",
            "mres_geo.tif", "report.txt",
        )
    ]  # fmt: skip
    whole = read_result(tmp_path / "whole" / "coast_01_mres.mat").class_map
    windows = tmp_path / "windows" / "coast_01_mres_geo.tif"
    with rasterio.open(windows) as src:
        assert src.crs is None and src.shape == whole.shape
        labels = src.read(1).astype(np.int16) - 1
    assert np.mean(labels == whole) > 0.99
    assert "labelled in 6 windows" in (tmp_path / "windows" / "coast_01_report.txt").read_text()


def test_a_photo_larger_than_a_block_is_painted_on_its_overview_and_labelled_in_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Painting the demo photo (768 x 512) with --block 256 at -s 0.5: the painter (here a
    stand-in that paints the demo's strokes) gets the photo shrunk by cells of 3 x 3 pixels,
    read in windows of 256 px, shown at scale 1 (0.5 x 3, at most 1); its strokes are saved at that
    size, each marks its cell, and the labels are those of the same strokes replayed on the
    photo whole. Resuming (--doodles the saved strokes --paint) hands the painter the same
    strokes back."""
    import dltools.cli.label as cli
    import dltools.engines.crf as crf
    import dltools.pipeline.label as label

    monkeypatch.setattr(crf, "_COARSE_READ", 256)
    photo = read_image(PHOTO)
    cell, shape = 3, photo.shape[:2]
    overview_shape = (-(-shape[0] // cell), -(-shape[1] // cell))
    doodles = read_image(DOODLES)[..., 0]
    painted = doodles[cell // 2 :: cell, cell // 2 :: cell]  # the demo's strokes, shrunk
    calls = []

    def paint(image, names, colors, *, scale, initial, autosave_path, **rest):
        calls.append((image, scale, initial))
        write_image(autosave_path, painted)
        return painted

    reads = []
    read_raster = label.read_raster
    monkeypatch.setattr(
        label, "read_raster", lambda path, window: reads.append(window) or read_raster(path, window)
    )
    monkeypatch.setattr(label, "paint_strokes", paint)
    monkeypatch.setattr(cli, "has_display", lambda: True)
    run = ["-i", str(PHOTO), *CLASSES, "-s", "0.5", "--block", "256"]
    assert main([*run, "--out-dir", str(tmp_path / "painted")]) == 0
    assert "strokes saved to" in capsys.readouterr().out
    ((image, scale, initial),) = calls
    assert image.shape == (*overview_shape, 3) and scale == 1.0 and initial is None
    cells = np.zeros((overview_shape[0] * cell, overview_shape[1] * cell, 3))
    cells[: shape[0], : shape[1]] = photo
    counts = np.zeros(cells.shape[:2])
    counts[: shape[0], : shape[1]] = 1
    sums = cells.reshape(overview_shape[0], cell, overview_shape[1], cell, 3).sum((1, 3))
    means = sums / counts.reshape(overview_shape[0], cell, -1, cell).sum((1, 3))[..., None]
    assert np.abs(image - means).max() <= 1  # the cells' means
    assert max(max(w.height, w.width) for w in reads) < max(shape)  # never read whole
    saved = tmp_path / "painted" / "coast_01_doodles.png"
    assert np.array_equal(read_image(saved)[..., 0], painted)

    full = np.kron(painted, np.ones((cell, cell), np.uint8))[: shape[0], : shape[1]]
    write_image(tmp_path / "full_doodles.png", full)
    assert label_photo(tmp_path / "whole", "-s", "0.5", doodles=tmp_path / "full_doodles.png") == 0
    whole = read_result(tmp_path / "whole" / "coast_01_mres.mat").class_map
    with rasterio.open(tmp_path / "painted" / "coast_01_mres_geo.tif") as src:
        assert src.shape == shape
        labels = src.read(1).astype(np.int16) - 1
    assert np.mean(labels == whole) > 0.99
    assert np.mean(labels[full > 0] == full[full > 0] - 1) > 0.99  # strokes keep their class

    resume = [*run, "--doodles", str(saved), "--paint", "--out-dir", str(tmp_path / "painted")]
    assert main([*resume, "--force"]) == 0
    (_, _, initial) = calls[-1]
    assert np.array_equal(initial, painted)


def test_a_batch_interrupted_in_a_large_geotiff_resumes_from_its_finished_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch replay of the demo GeoTIFF in 3 x 3 windows of 320 px, stopped (Ctrl-C) after 3
    windows: only the journal of finished windows is left; --resume labels the other 6 and
    writes what an uninterrupted run writes."""
    from processes import Interrupter

    images, strokes = tmp_path / "images", tmp_path / "strokes"
    images.mkdir()
    strokes.mkdir()
    (images / ORTHO.name).write_bytes(ORTHO.read_bytes())
    geojson = DEMO / "doodles" / "coast_ortho_doodles.geojson"
    (strokes / geojson.name).write_bytes(geojson.read_bytes())
    args = ["-i", str(images), *CLASSES, "--doodles", str(strokes), "-s", "0.2"]
    args += ["--block", "320", "--theta", "20"]
    assert main([*args, "--out-dir", str(tmp_path / "straight")]) == 0
    interrupter = Interrupter(monkeypatch)
    interrupter.stop_after = 3
    assert main([*args, "--out-dir", str(tmp_path / "resumed")]) == 130
    assert [p.name for p in (tmp_path / "resumed").iterdir()] == [
        ".resume-coast_ortho_mres_geo.tif"
    ]
    interrupter.ran.clear()
    interrupter.stop_after = None
    assert main([*args, "--out-dir", str(tmp_path / "resumed"), "--resume"]) == 0
    assert len(interrupter.ran) == 6
    names = sorted(p.name for p in (tmp_path / "straight").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "resumed").iterdir())
    with (
        rasterio.open(tmp_path / "straight" / "coast_ortho_mres_geo.tif") as straight,
        rasterio.open(tmp_path / "resumed" / "coast_ortho_mres_geo.tif") as resumed,
    ):
        assert np.array_equal(straight.read(1), resumed.read(1))


def test_label_1geotiff_refuses_a_plain_photo(tmp_path: Path, capsys) -> None:
    args = ["-i", str(PHOTO), *CLASSES, "--doodles", str(DOODLES), "--out-dir", str(tmp_path)]
    assert main_geotiff(args) == 2
    assert "georeferencing" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def write_doodles(path: Path, sparse: np.ndarray) -> Path:
    write_image(path, sparse.astype(np.uint8))
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("colours_mismatch", "colo"),
        ("wrong_aspect", "aspect"),
        ("unknown_class", "7"),
        ("corrupt_image", "coast_01.jpg"),
        ("missing_image", "not found"),
        ("no_strokes", "no strokes"),
        ("one_fold", "at least 2 folds"),
        ("order_without_painting", "add --paint"),
    ],
)
def test_bad_inputs_fail_clearly_and_write_nothing(tmp_path, capsys, case, message) -> None:
    out_dir = tmp_path / "out"
    image, doodles, classes = PHOTO, DOODLES, CLASSES
    if case == "colours_mismatch":
        colors = tmp_path / "colors.txt"
        colors.write_text("b\nw\ny\n")
        classes = ["-l", str(DEMO / "labels.txt"), "-c", str(colors)]
    elif case == "wrong_aspect":
        doodles = write_doodles(tmp_path / "d.png", read_image(DOODLES)[:200, :, 0])
    elif case == "unknown_class":
        sparse = read_image(DOODLES)[..., 0].copy()
        sparse[10:20, 10:20] = 7
        doodles = write_doodles(tmp_path / "d.png", sparse)
    elif case == "corrupt_image":
        image = tmp_path / "coast_01.jpg"
        image.write_bytes(PHOTO.read_bytes()[:5000])
    elif case == "missing_image":
        image = tmp_path / "nothing_here.jpg"
    elif case == "no_strokes":
        doodles = write_doodles(tmp_path / "d.png", np.zeros((512, 768)))
    args = ["-i", str(image), *classes, "--doodles", str(doodles), "--out-dir", str(out_dir)]
    args += {"one_fold": ["--check", "1"], "order_without_painting": ["--order", "uncertain"]}.get(
        case, []
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err
    assert not out_dir.exists() or not list(out_dir.iterdir())
