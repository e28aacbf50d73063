"""dltools.io.results: the original tool's _mres.mat / _ares.mat files."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from dltools.errors import DltoolsError
from dltools.io.images import read_image
from dltools.io.labels import read_labeldefs, read_labels
from dltools.io.results import (
    NODATA,
    LabelResult,
    read_result,
    remap_classes,
    reorder_result,
    result_name,
    write_result,
)

ELWHA = ["sediment", "road", "wood", "terrain", "veg", "water"]


@pytest.fixture(scope="module")
def formats(shared_dir: Path) -> Path:
    return shared_dir / "data" / "dltools_formats"


@pytest.fixture(scope="module")
def monterey(formats: Path) -> list[str]:
    return read_labels(formats / "labels" / "monterey_labels.txt")


@pytest.fixture(scope="module")
def labeldefs(formats: Path) -> tuple[list[str], np.ndarray]:
    return read_labeldefs(formats / "labels" / "labeldefs.txt")


@pytest.fixture(scope="module")
def full(formats: Path) -> LabelResult:
    """int32 arrays, all four keys, preds with one channel more than labels."""
    return read_result(formats / "gt" / "D800_20160308_221825-0_mres.mat")


@pytest.fixture(scope="module")
def small_types(formats: Path) -> LabelResult:
    """uint8 arrays, no preds, labels in another order."""
    return read_result(formats / "gt" / "D800_20160308_221737-0_mres.mat")


@pytest.fixture(scope="module")
def elwha(formats: Path) -> LabelResult:
    return read_result(formats / "geotiff" / "elwha" / "RGBraster_geotiff_mres.mat")


def test_full_result_file(full: LabelResult, monterey: list[str]) -> None:
    assert sorted(full.labels) == sorted(monterey)  # padding stripped
    assert full.labels[3:6] == ["dune", "duneveg", "drysand"]  # the file's own order
    assert full.class_map.shape == (4912, 7360) and full.class_map.dtype == np.int32
    assert full.sparse.shape == (4912, 7360) and full.sparse.dtype == np.int32
    assert full.preds.shape == (800, 1200, 16) and full.preds.dtype == np.float64
    assert full.class_map.max() == 14 and full.sparse.max() == 15
    # strokes k are class k - 1: where painted, the CRF mostly kept the painted class
    painted = full.sparse > 0
    assert np.mean(full.sparse[painted] - 1 == full.class_map[painted]) > 0.8


def test_uint8_result_without_preds(small_types: LabelResult, monterey: list[str]) -> None:
    assert small_types.labels == monterey
    assert small_types.class_map.dtype == np.uint8 and small_types.sparse.dtype == np.uint8
    assert small_types.preds is None
    assert small_types.class_map.shape == (4912, 7360)


def test_colour_png_was_painted_by_index(full: LabelResult, formats: Path, labeldefs) -> None:
    """The original tool coloured class i with colour i: dune and drysand came out swapped."""
    png = read_image(formats / "gt" / "D800_20160308_221825-0_gtFine_color.png")[::3, ::3]
    names, colors = labeldefs
    by_index = full.class_map[::3, ::3]
    assert np.mean(np.all(png == colors[by_index], axis=-1)) > 0.95
    by_name = reorder_result(full, names).class_map[::3, ::3]

    def share(name: str, colour_of: str) -> float:
        return np.mean(
            np.all(png[by_name == names.index(name)] == colors[names.index(colour_of)], -1)
        )

    assert share("dune", "drysand") > 0.9 and share("drysand", "dune") > 0.9
    assert share("dune", "dune") < 0.1
    assert share("water", "water") > 0.9 and share("marsh", "marsh") > 0.9


def test_classes_are_matched_by_name(full: LabelResult, small_types: LabelResult, labeldefs):
    names = labeldefs[0]
    for result in (full, small_types):
        moved = reorder_result(result, names)
        assert moved.labels == names
        pairs = np.unique(
            result.class_map[::5, ::5].astype(np.int64) * 100 + moved.class_map[::5, ::5]
        )
        assert all(result.labels[p // 100] == names[p % 100] for p in pairs)
        strokes = np.unique(result.sparse[::5, ::5].astype(np.int64) * 100 + moved.sparse[::5, ::5])
        assert 0 in strokes  # no stroke stays no stroke
        assert all(result.labels[p // 100 - 1] == names[p % 100 - 1] for p in strokes if p)


def test_read_with_labels_reorders_every_array(formats: Path, elwha: LabelResult) -> None:
    assert elwha.labels == ELWHA and elwha.preds.shape == (2471, 1455, 7)
    backwards = read_result(
        formats / "geotiff" / "elwha" / "RGBraster_geotiff_mres.mat", ELWHA[::-1]
    )
    assert backwards.labels == ELWHA[::-1]
    np.testing.assert_array_equal(backwards.class_map, 5 - elwha.class_map)
    np.testing.assert_array_equal(backwards.sparse, np.where(elwha.sparse > 0, 7 - elwha.sparse, 0))
    np.testing.assert_array_equal(backwards.preds[..., :6], elwha.preds[..., 5::-1])
    np.testing.assert_array_equal(backwards.preds[..., 6], elwha.preds[..., 6])  # extra, last


def test_reorder_into_a_superset_of_classes(elwha: LabelResult) -> None:
    crop = LabelResult(
        elwha.class_map[:50, :60], elwha.labels, elwha.sparse[:50, :60], elwha.preds[:50, :60]
    )
    wider = ["unknown", *ELWHA]
    moved = reorder_result(crop, wider)
    np.testing.assert_array_equal(moved.class_map, crop.class_map + 1)
    assert moved.preds.shape == (50, 60, 8) and not moved.preds[..., 0].any()
    np.testing.assert_array_equal(moved.preds[..., 1:], crop.preds)


def test_class_only_file_needs_a_labels_list(formats: Path, monterey: list[str]) -> None:
    path = formats / "gt" / "D800_20160308_221741-0_mres.mat"
    with pytest.raises(DltoolsError, match="stores no class names"):
        read_result(path)
    result = read_result(path, monterey)
    assert result.labels == monterey and result.sparse is None and result.preds is None
    assert result.class_map.dtype == np.uint8 and result.class_map.max() == 14
    with pytest.raises(DltoolsError, match=r"must lie in 0\.\.9"):
        read_result(path, monterey[:10])


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["water", "sand ", "veg  "]),  # char matrix, space-padded
        np.array([["water"], ["sand"], ["veg"]], dtype=object),  # N x 1 cell array
        np.array([["water", "sand", "veg"]], dtype=object),  # 1 x N cell array
    ],
)
@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.float64])
def test_storage_variants(tmp_path: Path, labels, dtype) -> None:
    class_map = np.array([[0, 1, 2], [2, 2, 0]])
    sparse = np.array([[1, 0, 3], [0, 0, 0]])
    path = tmp_path / "a_mres.mat"
    scipy.io.savemat(
        path, {"class": class_map.astype(dtype), "sparse": sparse.astype(dtype), "labels": labels}
    )
    result = read_result(path)
    assert result.labels == ["water", "sand", "veg"]
    assert result.class_map.dtype.kind in "iu"
    np.testing.assert_array_equal(result.class_map, class_map)
    np.testing.assert_array_equal(result.sparse, sparse)
    np.testing.assert_array_equal(
        read_result(path, ["veg", "water", "sand"]).class_map, (class_map + 1) % 3
    )


def test_single_label_stored_as_one_string(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "a.mat", {"class": np.zeros((2, 2), np.int32), "labels": "water"})
    assert read_result(tmp_path / "a.mat").labels == ["water"]


def test_write_like_the_originals(tmp_path: Path, elwha: LabelResult) -> None:
    crop = LabelResult(
        elwha.class_map[:300, :200], elwha.labels, elwha.sparse[:300, :200], elwha.preds[:300, :200]
    )
    path = tmp_path / result_name("RGBraster_geotiff.tif")
    write_result(path, crop)
    assert path.name == "RGBraster_geotiff_mres.mat"
    raw = scipy.io.loadmat(path)
    assert raw["class"].dtype == np.uint8 and raw["sparse"].dtype == np.uint8
    assert raw["preds"].dtype == np.float32 and raw["labels"].dtype.kind == "U"
    assert raw["labels"].tolist() == [name.ljust(8) for name in ELWHA]  # padded like MATLAB
    back = read_result(path)
    assert back.labels == ELWHA
    np.testing.assert_array_equal(back.class_map, crop.class_map)
    np.testing.assert_array_equal(back.sparse, crop.sparse)
    np.testing.assert_allclose(back.preds, crop.preds, rtol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_write_many_classes_and_no_optional_keys(tmp_path: Path) -> None:
    names = [f"c{i}" for i in range(300)]
    result = LabelResult(np.array([[0, 299]]), names)
    write_result(tmp_path / "a.mat", result)
    raw = scipy.io.loadmat(tmp_path / "a.mat")
    assert raw["class"].dtype == np.int32 and "sparse" not in raw and "preds" not in raw
    assert read_result(tmp_path / "a.mat").class_map.tolist() == [[0, 299]]


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ({"sparse": np.zeros((2, 2), np.uint8)}, "no 'class' array"),
        ({"class": np.array([[0, 3]]), "labels": ["a", "b", "c"]}, r"must lie in 0\.\.2"),
        ({"class": np.array([[0, -2]]), "labels": ["a", "b"]}, "values from -2"),
        (
            {"class": np.array([[0, 1]]), "sparse": np.array([[0, 4]]), "labels": ["a", "b"]},
            "'sparse'",
        ),
        ({"class": np.array([[0.5, 1]]), "labels": ["a", "b"]}, "whole numbers"),
        ({"class": np.zeros((2, 2)), "labels": ["a", "a"]}, "unique"),
        ({"class": np.zeros((2, 2)), "labels": ["a", "b"], "preds": np.zeros((2, 2, 1))}, "K >= 2"),
    ],
)
def test_bad_contents(tmp_path: Path, contents: dict, message: str) -> None:
    scipy.io.savemat(tmp_path / "bad.mat", contents)
    with pytest.raises(DltoolsError, match=message):
        read_result(tmp_path / "bad.mat")


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(DltoolsError, match="file not found"):
        read_result(tmp_path / "missing_mres.mat")
    (tmp_path / "junk_mres.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(range(256)) * 4)
    with pytest.raises(DltoolsError, match="junk_mres"):
        read_result(tmp_path / "junk_mres.mat")


def test_write_refuses_inconsistent_results(tmp_path: Path) -> None:
    with pytest.raises(DltoolsError, match="must lie in"):
        write_result(tmp_path / "a.mat", LabelResult(np.array([[0, 2]]), ["a", "b"]))
    assert list(tmp_path.iterdir()) == []


def test_remap_classes() -> None:
    class_map = np.array([[0, 1], [2, 1]], np.int32)
    out = remap_classes(class_map, ["water", "sand", "veg"], ["veg", "road", "water", "sand"])
    assert out.tolist() == [[2, 3], [0, 3]] and out.dtype.kind in "iu"
    with pytest.raises(DltoolsError, match="veg are not among"):
        remap_classes(class_map, ["water", "sand", "veg"], ["water", "sand"])
    with pytest.raises(DltoolsError, match="do not index"):
        remap_classes(np.array([[3]]), ["water", "sand", "veg"], ["veg", "water", "sand"])
    with pytest.raises(DltoolsError, match="do not index"):
        remap_classes(np.array([[-2]]), ["water", "sand", "veg"], ["veg", "water", "sand"])
    nodata = remap_classes(np.array([[-1, 0]]), ["water", "sand"], ["sand", "water"])
    assert nodata.tolist() == [[NODATA, 1]]


def test_nodata_class_round_trips(tmp_path: Path) -> None:
    class_map = np.array([[NODATA, 0], [1, NODATA]], np.int16)
    write_result(tmp_path / "geo_mres.mat", LabelResult(class_map, ["water", "sand"]))
    back = read_result(tmp_path / "geo_mres.mat", labels=["sand", "water"])
    assert back.class_map.tolist() == [[NODATA, 1], [0, NODATA]]


def test_result_name() -> None:
    assert result_name("/data/img_001.JPG") == "img_001_mres.mat"
    assert result_name(Path("a.b.tif"), "ares", "_crf") == "a.b_ares_crf.mat"
