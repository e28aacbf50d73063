"""Step 3: sliding windows, purity, pairing and retiling (pipeline.retile, dltools retile)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import Affine

import dltools.pipeline.retile as tiles_module
from dltools.cli import main as dltools_main
from dltools.engines.tiles import median_widths, pure_windows, width_histogram, window_class_counts
from dltools.errors import DltoolsError
from dltools.io.discovery import find_labelled_images
from dltools.io.geo import write_raster
from dltools.io.images import read_image, write_image
from dltools.io.results import LabelResult, write_result
from dltools.io.tile_library import Tile, read_manifest
from dltools.pipeline.retile import choose_tile_size, retile, thin
from dltools.raster.windows import window_origins
from dltools.synthetic.scenes import CLASS_NAMES, coastal_scene

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"


def brute_force_windows(labels: np.ndarray, size: int, stride: int, min_purity: float) -> set:
    """Every window checked one by one: {(row, col, label, rounded purity)}."""
    found = set()
    for row in range(0, labels.shape[0] - size + 1, stride):
        for col in range(0, labels.shape[1] - size + 1, stride):
            counts = np.bincount(labels[row : row + size, col : col + size].ravel(), minlength=256)
            counts[0] = 0  # unlabelled is never a class
            best = int(counts.argmax())
            purity = counts[best] / size**2
            if purity > min_purity:
                found.add((row, col, best, round(purity, 6)))
    return found


def as_set(windows) -> set:
    return {(r, c, k, round(p, 6)) for r, c, k, p in windows}


def test_window_counts_match_a_brute_force_count() -> None:
    rng = np.random.default_rng(1)
    labels = rng.choice(4, size=(70, 90), p=[0.3, 0.5, 0.1, 0.1])
    rows, cols = window_origins(70, 16, 7), window_origins(90, 16, 7)
    assert rows.tolist() == list(range(0, 55, 7)) and cols[-1] == 70
    counts = window_class_counts(labels, 16, rows, cols, 3)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            window = labels[r : r + 16, c : c + 16]
            assert counts[i, j].tolist() == [int(np.sum(window == k)) for k in (1, 2, 3)]


def test_unlabelled_pixels_count_against_purity_and_are_never_a_class() -> None:
    labels = np.zeros((40, 40), np.int32)
    labels[:, :17] = 2  # 85% of the left 20 x 20 windows, the rest unlabelled
    assert pure_windows(labels, 20, 20, 0.9, 3) == []
    kept = pure_windows(labels, 20, 20, 0.8, 3)
    assert [(r, c, k) for r, c, k, _ in kept] == [(0, 0, 2), (20, 0, 2)]
    assert kept[0][3] == pytest.approx(0.85)
    assert pure_windows(np.zeros((40, 40), np.int32), 20, 20, 0.0, 3) == []
    rng = np.random.default_rng(2)
    noisy = np.where(rng.random((120, 150)) < 0.05, 0, rng.choice([1, 3], size=(1, 150)))
    noisy = np.repeat(noisy, 1, axis=0).astype(np.int32)
    assert as_set(pure_windows(noisy, 24, 10, 0.6, 3)) == brute_force_windows(noisy, 24, 10, 0.6)


def test_thinning_keeps_a_seeded_fraction_of_big_classes_only() -> None:
    image = Path("a.jpg")
    tiles = [Tile(image, i, 0, 1, 1.0) for i in range(100)]
    tiles += [Tile(image, i, 1, 2, 1.0) for i in range(30)]
    tiles += [Tile(image, i, 2, 3, 1.0) for i in range(61)]
    kept = thin(tiles, 0.25, seed=0)
    per_class = np.bincount([t.label for t in kept], minlength=4)
    assert per_class.tolist() == [0, 25, 30, round(0.25 * 61)]
    assert thin(list(reversed(tiles)), 0.25, seed=0) == kept
    assert thin(tiles, 0.25, seed=1) != kept
    assert thin(tiles, 1.0) == sorted(tiles, key=lambda t: (str(t.image), t.row, t.col))
    with pytest.raises(DltoolsError):
        thin(tiles, 0.0)


def test_class_aware_purity_keeps_windows_of_thin_classes() -> None:
    labels = np.ones((40, 40), np.int32)  # land
    labels[:, 14:20] = 4  # a road 6 px wide: 30% of the left 20 x 20 windows
    assert [k for *_, k, _ in pure_windows(labels, 20, 20, 0.9, 4)] == [1, 1]  # right column
    kept = pure_windows(labels, 20, 20, np.array([0.9, 0.9, 0.9, 0.25]), 4)
    assert [(c, k) for _, c, k, _ in kept] == [(0, 4), (20, 1), (0, 4), (20, 1)]
    assert kept[0][3] == pytest.approx(0.3)
    # land at 70% does not reach its 0.9, the road exceeds its 0.25 by 1.2x: road wins; with
    # land at 0.6 land exceeds by 1.17x and the road by 1.2x: still the road
    kept = pure_windows(labels, 20, 20, np.array([0.6, 0.9, 0.9, 0.25]), 4)
    assert [k for *_, k, _ in kept][:1] == [4]
    names = ["land", "water", "building", "road"]
    assert tiles_module.class_thresholds(names, 0.9, None) == 0.9
    np.testing.assert_array_equal(
        tiles_module.class_thresholds(names, 0.9, {"road": 0.3}), [0.9, 0.9, 0.9, 0.3]
    )
    with pytest.raises(DltoolsError, match="roads"):
        tiles_module.class_thresholds(names, 0.9, {"roads": 0.3})


def test_class_aware_thinning_keeps_rare_classes_whole() -> None:
    image = Path("a.jpg")
    tiles = [Tile(image, i, 0, 1, 1.0) for i in range(500)]
    tiles += [Tile(image, i, 1, 2, 1.0) for i in range(40)]
    tiles += [Tile(image, i, 2, 3, 1.0) for i in range(100)]
    kept = tiles_module.cap_classes(tiles, 2.0, seed=0)
    assert np.bincount([t.label for t in kept]).tolist() == [0, 80, 40, 80]
    assert tiles_module.cap_classes(list(reversed(tiles)), 2.0, seed=0) == kept
    few = tiles_module.cap_classes(tiles, 1.0, seed=0)  # never below 60 a class
    assert np.bincount([t.label for t in few]).tolist() == [0, 60, 40, 60]
    with pytest.raises(DltoolsError):
        tiles_module.cap_classes(tiles, 0.5)


def touch(folder: Path, *names: str) -> None:
    """Small files: JPGs are RGB photos, TIF/PNG one-band label rasters, others empty."""
    for name in names:
        suffix = Path(name).suffix
        if suffix == ".jpg":
            write_image(folder / name, np.zeros((8, 8, 3), np.uint8))
        elif suffix in (".tif", ".png"):
            write_image(folder / name, np.zeros((8, 8), np.uint8))
        else:
            (folder / name).write_bytes(b"")


def test_pairing_in_a_mixed_folder_lists_images_without_labels(tmp_path: Path) -> None:
    touch(tmp_path, "StMarg_26607.jpg", "SCLS_StMarg26607.tif", "StMarg_2660.jpg")
    touch(tmp_path, "StMarg_26626.jpg", "coast_1.jpg", "coast_1_mres.mat", "notes.txt")
    touch(tmp_path, "coast_1_north.jpg")  # an RGB photo: never taken for coast_1's labels
    pairs, unlabelled = find_labelled_images(tmp_path)
    assert [(i.name, lab.name) for i, lab in pairs] == [
        ("StMarg_26607.jpg", "SCLS_StMarg26607.tif"),
        ("coast_1.jpg", "coast_1_mres.mat"),
    ]
    names = ["StMarg_2660.jpg", "StMarg_26626.jpg", "coast_1_north.jpg"]
    assert [p.name for p in unlabelled] == names
    touch(tmp_path, "coast_1_label.png")  # now coast_1 has two label files
    with pytest.raises(DltoolsError, match="more than one label file"):
        find_labelled_images(tmp_path)


@pytest.fixture
def demo_pair(tmp_path: Path) -> Path:
    """Two demo photos (their labels stay in demo_data/labels) and one photo without labels."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("coast_01.jpg", "coast_02.jpg"):
        shutil.copy(DEMO / "images" / name, folder / name)
    shutil.copy(DEMO / "images" / "coast_03.jpg", folder / "unlabelled_photo.jpg")
    return folder


def test_retile_cli_writes_the_pure_windows_of_label_rasters(
    demo_pair: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "lib"
    labels_txt = DEMO / "labels.txt"
    args = ["retile", "-i", str(demo_pair), "--label-dir", str(DEMO / "labels")]
    args += ["-l", str(labels_txt), "-t", "64", "--stride", "40", "-o", str(out), "--legacy"]
    assert dltools_main(args) == 0
    printed = capsys.readouterr().out
    assert "unlabelled_photo.jpg" in printed  # listed, not silently dropped
    library = out / "tile_64"
    rows = read_manifest(library / "tiles.csv")
    files = sorted(str(p.relative_to(library)) for p in library.glob("*/*.jpg"))
    assert sorted(r["tile"] for r in rows) == files
    names = [line.strip() for line in labels_txt.read_text().splitlines()]
    for stem in ("coast_01", "coast_02"):
        label_map = read_image(DEMO / "labels" / f"{stem}_label.png")[..., 0]
        expected = brute_force_windows(label_map, 64, 40, 0.9)
        found = {
            (int(r["row"]), int(r["col"]), names.index(r["class"]) + 1, float(r["purity"]))
            for r in rows
            if r["image"] == f"{stem}.jpg"
        }
        assert {(r, c, k) for r, c, k, _ in found} == {(r, c, k) for r, c, k, _ in expected}
        assert len(found) > 20
    counts = np.bincount([names.index(r["class"]) for r in rows], minlength=6)
    for name, count in zip(names, counts, strict=True):
        assert re.search(rf"^  {name} +{count}$", printed, re.MULTILINE)
    # tiles hold the image's pixels at (row, col), named <image>_<row>_<col>.jpg
    image = read_image(demo_pair / "coast_02.jpg")
    for r in rows[-5:]:
        row, col = int(r["row"]), int(r["col"])
        assert Path(r["tile"]).name == f"{Path(r['image']).stem}_{row}_{col}.jpg"
        if r["image"] == "coast_02.jpg":
            tile = read_image(library / r["tile"]).astype(float)
            assert np.abs(tile - image[row : row + 64, col : col + 64]).mean() < 3
    # an existing library is never overwritten without --force
    assert dltools_main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert dltools_main([*args, "--stride", "28", "--force"]) == 0
    dense = read_manifest(library / "tiles.csv")
    assert dltools_main([*args, "--stride", "28", "-b", "0.5", "--force", "--seed", "1"]) == 0
    thinned = read_manifest(library / "tiles.csv")
    before = np.bincount([names.index(r["class"]) for r in dense], minlength=6)
    after = np.bincount([names.index(r["class"]) for r in thinned], minlength=6)
    assert before.max() > 60 and 0 < before.min(where=before > 0, initial=999) <= 60
    assert after.tolist() == [round(n / 2) if n > 60 else n for n in before]
    # the defaults: -a 0.7, and no class keeps more than 4 times the rarest's tiles (at least 60)
    defaults = [a for a in args if a != "--legacy"]
    assert dltools_main([*defaults, "--stride", "28", "--force"]) == 0
    capped = read_manifest(library / "tiles.csv")
    expected = set()
    for stem in ("coast_01", "coast_02"):
        label_map = read_image(DEMO / "labels" / f"{stem}_label.png")[..., 0]
        windows = brute_force_windows(label_map, 64, 28, 0.7)
        expected |= {(f"{stem}.jpg", r, c, k) for r, c, k, _ in windows}
    found = {
        (r["image"], int(r["row"]), int(r["col"]), names.index(r["class"]) + 1) for r in capped
    }
    assert found <= expected
    pure = np.bincount([k - 1 for *_, k in expected], minlength=6)
    cap = max(60, round(4 * pure.min(where=pure > 0, initial=999)))
    assert pure.max() > cap  # the cap bites
    kept = np.bincount([names.index(r["class"]) for r in capped], minlength=6)
    assert kept.tolist() == np.minimum(pure, cap).tolist()
    assert dltools_main([*defaults, "--stride", "28", "--force", "--max-ratio", "0"]) == 0
    assert len(read_manifest(library / "tiles.csv")) == len(expected)


def test_mres_mat_labels_are_mapped_onto_labels_txt_by_name(tmp_path: Path) -> None:
    image, truth = coastal_scene(256, 320, seed=3)
    write_image(tmp_path / "beach.jpg", image)
    order = list(reversed(CLASS_NAMES))  # the .mat lists its classes in another order
    class_map = np.array([order.index(CLASS_NAMES[v - 1]) for v in range(1, 7)])[truth - 1]
    write_result(tmp_path / "beach_mres.mat", LabelResult(class_map.astype(np.uint8), order))
    pairs, _ = find_labelled_images(tmp_path)
    library = retile(pairs, tmp_path, size=32, min_purity=0.95, class_names=list(CLASS_NAMES))
    assert library.tiles
    for tile in library.tiles:
        window = truth[tile.row : tile.row + 32, tile.col : tile.col + 32]
        assert np.mean(window == tile.label) > 0.95
        assert (library.folder / CLASS_NAMES[tile.label - 1] / tile.name()).is_file()
    # without -l the names stored in the .mat are used, in its order
    unnamed = retile(pairs, tmp_path / "own", size=32, min_purity=0.95)
    assert unnamed.class_names == order
    assert sorted(library.counts().values()) == sorted(unnamed.counts().values())


def test_geotiffs_are_tiled_block_by_block(tmp_path: Path, monkeypatch) -> None:
    image, truth = coastal_scene(700, 900, seed=4)
    labels = truth.copy()
    labels[:, 600:] = 255  # nodata: unlabelled
    like = {
        "width": 900,
        "height": 700,
        "crs": "EPSG:32610",
        "transform": Affine(1, 0, 0, 0, -1, 0),
    }
    write_raster(tmp_path / "ortho.tif", image, like)
    write_raster(tmp_path / "ortho_label.tif", labels, like, nodata=255)
    pairs, unlabelled = find_labelled_images(tmp_path)
    assert [(i.name, lab.name) for i, lab in pairs] == [("ortho.tif", "ortho_label.tif")]
    assert unlabelled == []
    whole = retile(pairs, tmp_path / "whole", 48, 0.9, max_ratio=None, class_names=CLASS_NAMES)

    reads = []
    real_read = tiles_module.read_raster

    def spy(path, window=None, bands=None):
        reads.append(window)
        return real_read(path, window, bands)

    monkeypatch.setattr(tiles_module, "read_raster", spy)
    monkeypatch.setattr(tiles_module, "BLOCK", 200)
    blocks = retile(pairs, tmp_path / "blocks", 48, 0.9, max_ratio=None, class_names=CLASS_NAMES)
    assert reads and all(w is not None and w.width <= 200 and w.height <= 200 for w in reads)
    assert blocks.tiles == whole.tiles
    assert all(t.col + 48 <= 600 for t in whole.tiles)  # nothing from the nodata part
    expected = brute_force_windows(np.where(labels == 255, 0, labels), 48, 24, 0.9)
    assert {(t.row, t.col, t.label) for t in whole.tiles} == {(r, c, k) for r, c, k, _ in expected}


def test_bad_label_inputs_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    image, truth = coastal_scene(128, 160, seed=5)
    write_image(tmp_path / "a.jpg", image)
    write_image(tmp_path / "a_label.png", truth)
    labels3 = tmp_path / "labels3.txt"
    labels3.write_text("water\nfoam\nsand\n")
    assert dltools_main(["retile", "-i", str(tmp_path), "-t", "32"]) == 2
    assert "-l labels.txt" in capsys.readouterr().err
    assert dltools_main(["retile", "-i", str(tmp_path), "-t", "32", "-l", str(labels3)]) == 2
    err = capsys.readouterr().err
    assert "a_label.png" in err and "3 classes" in err
    write_image(tmp_path / "a_label.png", truth[:100])
    with pytest.raises(DltoolsError, match="128 x 160"):
        retile(find_labelled_images(tmp_path)[0], tmp_path, 32, class_names=CLASS_NAMES)
    write_image(tmp_path / "a.tif", image[..., :2])  # 16-bit is stretched; 2 bands are not RGB
    (tmp_path / "a.jpg").unlink()
    write_image(tmp_path / "a_label.png", truth)
    with pytest.raises(DltoolsError, match=r"2 bands.*--bands"):
        retile(find_labelled_images(tmp_path)[0], tmp_path, 32, class_names=CLASS_NAMES)
    assert not (tmp_path / "tile_32").exists()  # nothing half-written


# --- the tile size chosen from the label maps ------------------------------------------------


def test_widths_are_twice_the_distance_to_another_class() -> None:
    labels = np.zeros((4, 12), int)
    labels[:, 2:7] = 1  # a stripe 5 px wide: widths 2, 4, 6, 4, 2 across it
    labels[:, 7:] = 2  # 5 px wide, touching the array's edge, which is no boundary
    counts = width_histogram(labels, 3, max_width=20)
    assert counts.shape == (3, 21)
    assert {w: n for w, n in enumerate(counts[0]) if n} == {2: 8, 4: 8, 6: 4}
    assert {w: n for w, n in enumerate(counts[1]) if n} == {2: 4, 4: 4, 6: 4, 8: 4, 10: 4}
    np.testing.assert_array_equal(median_widths(counts), [4, 6, np.nan])
    whole = width_histogram(np.ones((3, 3), int), 1, max_width=20)  # no boundary at all
    assert whole[0, 20] == 9 and whole.sum() == 9


@pytest.mark.parametrize(
    ("thinnest", "size"), [(None, 96), (300, 96), (48, 96), (47, 64), (32, 64), (31, 48), (2, 48)]
)
def test_the_tile_size_is_the_largest_whose_half_every_class_reaches(thinnest, size) -> None:
    widths = {} if thinnest is None else {"wide": 500.0, "thin": float(thinnest)}
    assert choose_tile_size(widths) == size


def test_retile_without_t_chooses_the_size_and_says_why(
    demo_pair: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["retile", "-i", str(demo_pair), "--label-dir", str(DEMO / "labels")]
    args += ["-l", str(DEMO / "labels.txt")]
    assert dltools_main([*args, "-o", str(tmp_path / "auto")]) == 0
    printed = capsys.readouterr().out
    # the demo's foam lines are 2 px wide (median): no tile of 96 or 64 px is ever mostly foam
    assert re.search(r"tile size 48 px, chosen from the label maps .*foam 2[, ]", printed)
    assert sorted(p.name for p in (tmp_path / "auto").iterdir()) == ["tile_48"]
    assert dltools_main([*args, "-o", str(tmp_path / "legacy"), "--legacy"]) == 0
    assert "tile size" not in capsys.readouterr().out  # 2018's 96 px, nothing measured
    assert sorted(p.name for p in (tmp_path / "legacy").iterdir()) == ["tile_96"]


def test_the_shared_sets_get_their_measured_tile_sizes(shared_dir: Path) -> None:
    """River frames (classes 90+ px wide) keep 96-px tiles; the city's roads (6 px) get 48-px
    tiles: the sizes that scored best on each set's held-out images (README, Accuracy)."""
    from dltools.io.labels import read_classes
    from dltools.pipeline.retile import class_widths

    river, _ = find_labelled_images(shared_dir / "data" / "stmarg" / "train")
    widths = class_widths(river, ["water", "sediment", "vegetation"])
    assert min(widths, key=widths.get) == "sediment" and widths["sediment"] > 60
    assert choose_tile_size(widths) == 96
    dubai = shared_dir / "data" / "dubai"
    classes = read_classes(labeldefs=dubai / "labeldefs.txt")
    city = []
    for tile in sorted(dubai.glob("tile_*")):
        city += find_labelled_images(tile / "images", tile / "masks")[0]
    widths = class_widths(city, list(classes.names), classes.colors)
    assert min(widths, key=widths.get) == "road" and widths["road"] < 16
    assert choose_tile_size(widths) == 48


def test_a_large_label_raster_is_measured_in_a_few_blocks(tmp_path: Path, monkeypatch) -> None:
    from dltools.io.label_maps import LabelMap

    monkeypatch.setattr(tiles_module, "BLOCK", 64)
    monkeypatch.setattr(tiles_module, "MEASURED_BLOCKS", 3)
    image, labels = coastal_scene(300, 330, seed=4)[:2]
    write_image(tmp_path / "a.png", image)
    write_image(tmp_path / "a_label.png", labels)
    label_map = LabelMap(tmp_path / "a_label.png", CLASS_NAMES)
    counts = tiles_module.label_widths(tmp_path / "a.png", label_map)
    assert 2 * 64 * 64 < counts.sum() <= 3 * 64 * 64  # 3 of the 30 blocks, not 99,000 pixels
    monkeypatch.setattr(tiles_module, "MEASURED_BLOCKS", 30)
    assert tiles_module.label_widths(tmp_path / "a.png", label_map).sum() == 300 * 330
