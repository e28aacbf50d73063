"""Which bands of an image feed a network, in what range (dltools.raster.bands), end to end
through retile: the choice is made once, recorded, and a mismatch is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dltools.cli import main as dltools_main
from dltools.errors import DltoolsError
from dltools.io.images import read_image, training_bands, write_image
from dltools.io.labels import write_labels
from dltools.io.tile_library import read_band_choice
from dltools.raster.bands import RGB8, BandChoice, choose_bands, parse_bands, stretch_ranges

DEMO = Path(__file__).resolve().parents[1] / "demo_data"


def test_bands_are_parsed_and_chosen_once_never_guessed() -> None:
    assert parse_bands("1,2,3") == (1, 2, 3) and parse_bands("4, 3, 2") == (4, 3, 2)
    assert parse_bands("2") == (2, 2, 2)
    for bad in ("1,2", "0,1,2", "a", ""):
        with pytest.raises(DltoolsError, match="--bands"):
            parse_bands(bad)
    assert choose_bands(3, "x.tif") == (1, 2, 3) and choose_bands(1, "x.tif") == (1, 1, 1)
    for count in (2, 4, 8):
        with pytest.raises(DltoolsError, match=f"x.tif has {count} bands.*--bands"):
            choose_bands(count, "x.tif")
    assert choose_bands(4, "x.tif", (4, 3, 2)) == (4, 3, 2)
    with pytest.raises(DltoolsError, match=r"band\(s\) 5"):
        choose_bands(4, "x.tif", (5, 3, 2))


def test_inference_checks_the_image_against_the_models_choice() -> None:
    with pytest.raises(DltoolsError, match=r"a.png has 4 band\(s\).*bands 1,2,3.*--bands"):
        RGB8.for_image(4, "uint8", "a.png", model="m")
    with pytest.raises(DltoolsError, match="uint16"):
        RGB8.for_image(3, "uint16", "a.tif")
    assert RGB8.for_image(3, "uint8", "a.png") == RGB8
    chosen = RGB8.for_image(4, "uint8", "a.png", (1, 2, 3))
    rgba = np.arange(2 * 2 * 4, dtype=np.uint8).reshape(2, 2, 4)
    np.testing.assert_array_equal(chosen.apply(rgba), rgba[..., :3])
    assert BandChoice.from_dict(chosen.to_dict()) == chosen
    assert BandChoice.from_dict(json.loads(json.dumps(chosen.to_dict()))) == chosen
    assert BandChoice.from_dict(None) == RGB8  # models saved before the choice was recorded


def test_the_stretch_maps_percentiles_or_a_fixed_range_to_0_255() -> None:
    rng = np.random.default_rng(0)
    samples = rng.uniform(0, 10000, (10000, 4)).astype(np.float32)
    samples[:5] = np.nan
    (low, high), *_ = stretch_ranges(samples, (4, 3, 2))
    assert 150 < low < 250 and 9750 < high < 9850
    assert stretch_ranges(None, (1, 2, 3), fixed=(0, 4095)) == ((0, 4095),) * 3
    choice = BandChoice((1, 1, 1), 1, "float32", ((0.0, 1.0),) * 3)
    pixels = np.array([[[-1.0], [0.5], [2.0], [np.nan]]], np.float32)
    np.testing.assert_array_equal(choice.apply(pixels)[0, :, 0], [0, 128, 255, 0])


def labelled_demo(folder: Path, image: np.ndarray) -> Path:
    """``folder`` with coast_01 as ``image`` (a .tif) and its label raster; labels.txt beside."""
    write_image(folder / "coast_01.tif", image)
    write_image(folder / "coast_01_label.png", read_image(DEMO / "labels" / "coast_01_label.png"))
    write_labels(folder.parent / "labels.txt", (DEMO / "labels.txt").read_text().split())
    return folder


def retile(folder: Path, *options: str) -> int:
    args = ["retile", "-i", folder, "-l", folder.parent / "labels.txt", "-t", 64, "-a", 0.9]
    return dltools_main([str(a) for a in [*args, *options]])


def test_retile_records_the_bands_and_refuses_an_rgba_image_without_bands(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rgb = read_image(DEMO / "images" / "coast_01.jpg")
    nir = rgb[..., 1:2] // 2
    folder = labelled_demo(tmp_path / "four", np.concatenate([rgb, nir], axis=2))
    assert retile(folder) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "coast_01.tif has 4 bands" in err and "--bands" in err
    assert not (folder / "tile_64").exists()
    assert retile(folder, "--bands", "4,1,2") == 0
    choice = read_band_choice(folder / "tile_64")
    assert choice == BandChoice((4, 1, 2), 4, "uint8")
    tile = next((folder / "tile_64").glob("*/*.jpg"))
    row, col = (int(v) for v in tile.stem.split("_")[-2:])
    expected = np.concatenate([nir, rgb[..., :2]], axis=2)[row : row + 64, col : col + 64]
    assert np.abs(read_image(tile).astype(int) - expected).mean() < 2  # JPEG


def test_16_bit_images_are_stretched_by_percentiles_or_a_fixed_range(tmp_path: Path) -> None:
    rgb = read_image(DEMO / "images" / "coast_01.jpg")
    folder = labelled_demo(tmp_path / "deep", rgb.astype(np.uint16) * 257)
    assert retile(folder, "--stretch", "0,65535") == 0
    library = folder / "tile_64"
    assert read_band_choice(library).ranges == ((0.0, 65535.0),) * 3
    tile = next(library.glob("*/*.jpg"))
    row, col = (int(v) for v in tile.stem.split("_")[-2:])
    expected = rgb[row : row + 64, col : col + 64].astype(int)
    assert np.abs(read_image(tile).astype(int) - expected).mean() < 2
    percentiles = training_bands([folder / "coast_01.tif"])
    low, high = percentiles.ranges[0]
    red = rgb[..., 0].astype(float) * 257
    assert abs(low - np.percentile(red, 2)) < 0.03 * 65535
    assert abs(high - np.percentile(red, 98)) < 0.03 * 65535
    write_image(tmp_path / "mixed" / "a.tif", rgb)
    write_image(tmp_path / "mixed" / "b.tif", rgb.astype(np.uint16))
    with pytest.raises(DltoolsError, match="one band layout"):
        training_bands(sorted((tmp_path / "mixed").iterdir()))


def test_model_files_that_cannot_record_bands_take_only_rgb8(tmp_path: Path) -> None:
    from dltools.models.loader import check_format

    four = BandChoice((1, 2, 3), 4, "uint8")
    check_format(tmp_path / "model", four)  # a SavedModel folder records it
    check_format(tmp_path / "model.keras", RGB8)
    for name in ("model.keras", "model.pb"):
        with pytest.raises(DltoolsError, match="SavedModel"):
            check_format(tmp_path / name, four)


def test_retile_keeps_going_past_an_unreadable_image_and_skips_a_finished_library(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = labelled_demo(tmp_path / "photos", read_image(DEMO / "images" / "coast_01.jpg"))
    data = (DEMO / "images" / "coast_02.jpg").read_bytes()
    (folder / "coast_02.jpg").write_bytes(data[: len(data) // 2])
    write_image(folder / "coast_02_label.png", read_image(DEMO / "labels" / "coast_02_label.png"))
    assert retile(folder) == 2
    assert "coast_02.jpg" in capsys.readouterr().err and not (folder / "tile_64").exists()
    assert retile(folder, "--keep-going") == 2
    err = capsys.readouterr().err
    assert "1 image(s) could not be tiled" in err and "coast_02.jpg" in err
    tiles = list((folder / "tile_64").glob("*/*.jpg"))
    assert tiles and all(t.name.startswith("coast_01_") for t in tiles)
    manifest = (folder / "tile_64" / "tiles.csv").read_text()
    assert "coast_02" not in manifest and len(manifest.splitlines()) == len(tiles) + 1
    assert retile(folder, "--skip-existing") == 0
    assert "exists, skipped" in capsys.readouterr().out
