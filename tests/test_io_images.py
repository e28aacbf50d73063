"""dltools.io.images: image files to (H, W, C) arrays and back."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from dltools.errors import DltoolsError
from dltools.io.images import (
    IMAGE_SUFFIXES,
    image_shape,
    is_image_file,
    list_images,
    read_image,
    write_image,
)


@pytest.fixture(scope="module")
def stmarg(shared_dir: Path) -> Path:
    return shared_dir / "data" / "stmarg" / "train"


def test_is_image_file_ignores_case_and_hidden_files() -> None:
    assert IMAGE_SUFFIXES == {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
    assert is_image_file("a/B.JPG") and is_image_file("x.Tiff") and is_image_file("y.png")
    assert not is_image_file("a_mres.mat") and not is_image_file("labels.txt")
    assert not is_image_file(".a.tmp.png")  # an unfinished atomic write


def test_list_images_sorted_and_filtered(tmp_path: Path) -> None:
    for name in ["b.png", "a.JPG", "c.tif", "notes.txt", "a_mres.mat", ".hidden.jpg"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.jpg").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png", "c.tif"]
    with pytest.raises(DltoolsError, match="folder not found"):
        list_images(tmp_path / "missing")


def test_list_images_real_folder(stmarg: Path) -> None:
    found = list_images(stmarg)
    assert len(found) == 20
    assert sum(p.suffix == ".jpg" for p in found) == 10


def test_read_real_jpg_photo(stmarg: Path) -> None:
    path = stmarg / "StMarg_26607.jpg"
    image = read_image(path)
    assert image.shape == (1960, 3008, 3) and image.dtype == np.uint8
    assert image_shape(path) == (1960, 3008, 3)
    assert image.std() > 10  # a real photo, not a blank decode
    # RGB order agrees with OpenCV's BGR decode within the decoders' rounding differences
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert np.abs(image.astype(int) - bgr[..., ::-1]).mean() < 1
    np.testing.assert_array_equal(read_image(path, bands=[2, 0]), image[..., [2, 0]])


def test_read_real_float64_label_tif(stmarg: Path) -> None:
    labels = read_image(stmarg / "SCLS_StMarg26607.tif")
    assert labels.shape == (1960, 3008, 1) and labels.dtype == np.float64
    assert set(np.unique(labels)) <= {0.0, 1.0, 2.0, 3.0}
    assert 0.55 <= (labels == 0).mean() <= 0.75  # unlabelled share given in shared/README.md


def test_read_real_gtfine_color_png(shared_dir: Path) -> None:
    path = (
        shared_dir / "data" / "dltools_formats" / "gt" / "D800_20160308_221825-0_gtFine_color.png"
    )
    assert image_shape(path) == (4912, 7360, 3)
    image = read_image(path)
    assert image.shape == (4912, 7360, 3) and image.dtype == np.uint8
    # a colour label image: few distinct colours, water (0, 0, 255) among them
    colours = np.unique(image[::8, ::8].reshape(-1, 3), axis=0)
    assert 5 <= len(colours) <= 15
    assert [0, 0, 255] in colours.tolist()


def test_png_is_read_in_rgb_order(tmp_path: Path) -> None:
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 2] = 255  # red, in OpenCV's order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    image = read_image(tmp_path / "red.png")
    assert image[..., 0].min() == 255 and image[..., 1:].max() == 0


@pytest.mark.parametrize(
    ("suffix", "dtype", "bands"),
    [
        (".png", np.uint8, 1),
        (".png", np.uint8, 3),
        (".png", np.uint8, 4),
        (".png", np.uint16, 1),
        (".png", np.uint16, 3),
        (".tif", np.uint8, 1),
        (".tif", np.uint8, 3),
        (".tiff", np.uint16, 5),
        (".TIF", np.float32, 2),
    ],
)
def test_lossless_round_trip(tmp_path: Path, suffix: str, dtype, bands: int) -> None:
    rng = np.random.default_rng(bands)
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1
    array = (rng.random((37, 53, bands)) * top).astype(dtype)
    path = tmp_path / f"out{suffix}"
    write_image(path, array)
    assert image_shape(path) == (37, 53, bands)
    back = read_image(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, array)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary or .aux.xml files


def test_two_dimensional_array_is_written_as_one_band(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_image(tmp_path / "a.png", array)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), array[..., None])


def test_jpg_round_trip_is_close(tmp_path: Path) -> None:
    y, x = np.mgrid[0:64, 0:96]
    array = np.stack([x * 2, y * 3, (x + y)], axis=-1).astype(np.uint8)
    write_image(tmp_path / "a.jpeg", array)
    back = read_image(tmp_path / "a.jpeg")
    assert back.shape == array.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - array).mean() < 2


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("a.jpg", np.zeros((4, 4, 3), np.uint16), "JPEG cannot store 3 band"),
        ("a.png", np.zeros((4, 4, 5), np.uint8), "PNG cannot store 5 band"),
        ("a.bmp", np.zeros((4, 4, 3), np.uint8), "suffix '.bmp'"),
    ],
)
def test_write_refuses_what_the_format_cannot_hold(
    tmp_path: Path, name: str, array: np.ndarray, message: str
) -> None:
    with pytest.raises(DltoolsError, match=message):
        write_image(tmp_path / name, array)
    assert list(tmp_path.iterdir()) == []


def test_missing_and_corrupt_files_are_user_errors(tmp_path: Path, stmarg: Path) -> None:
    with pytest.raises(DltoolsError, match="file not found"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    with pytest.raises(DltoolsError, match="garbage"):
        read_image(tmp_path / "garbage.jpg")
    with pytest.raises(DltoolsError, match="garbage"):
        image_shape(tmp_path / "garbage.jpg")
    # a real photo cut in half: the header is fine, the pixels are not
    data = (stmarg / "StMarg_26607.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    assert image_shape(tmp_path / "truncated.jpg") == (1960, 3008, 3)
    with pytest.raises(DltoolsError, match="truncated"):
        read_image(tmp_path / "truncated.jpg")


def test_bad_band_selection(stmarg: Path) -> None:
    with pytest.raises(DltoolsError, match="has 3 band"):
        read_image(stmarg / "StMarg_26607.jpg", bands=[3])


def test_outputs_get_the_usual_file_mode(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_world_file_beside_a_jpeg_still_georeferences_it(tmp_path: Path) -> None:
    # folders are not listed at each open (GDAL_DISABLE_READDIR_ON_OPEN): sidecars are probed
    from dltools.io.geo import is_georeferenced, open_raster

    rgb = np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)
    for name in ("photo", "other"):
        write_image(tmp_path / f"{name}.jpg", rgb)
    (tmp_path / "photo.jgw").write_text("0.5\n0\n0\n-0.5\n600000.25\n4100000.25\n")
    assert is_georeferenced(tmp_path / "photo.jpg")
    assert not is_georeferenced(tmp_path / "other.jpg")
    with open_raster(tmp_path / "photo.jpg") as src:  # the world file names pixel centres
        assert tuple(src.transform)[:6] == (0.5, 0.0, 600000.0, 0.0, -0.5, 4100000.5)
