"""dltools.io.labels: labels.txt, colors.txt and labeldefs.txt."""

from pathlib import Path

import numpy as np
import pytest

from dltools.errors import DltoolsError
from dltools.io.labels import (
    read_classes,
    read_colors,
    read_labeldefs,
    read_labels,
    write_colors,
    write_labels,
)

MONTEREY = [
    "agricultural",
    "anthro",
    "cliff",
    "drysand",
    "dune",
    "duneveg",
    "foam",
    "marsh",
    "road",
    "shrubland",
    "swash",
    "terrain",
    "veg",
    "water",
    "wetsand",
]


@pytest.fixture(scope="module")
def formats(shared_dir: Path) -> Path:
    return shared_dir / "data" / "dltools_formats"


def test_monterey_labels_and_colours(formats: Path) -> None:
    names, colors = read_classes(
        formats / "labels" / "monterey_labels.txt", formats / "labels" / "monterey_label_colors.txt"
    )
    assert names == MONTEREY
    assert colors.shape == (15, 3) and colors.dtype == np.uint8
    by_name = dict(zip(names, colors.tolist(), strict=True))
    assert by_name["agricultural"] == [0x55, 0x6B, 0x2F]  # hex
    assert by_name["anthro"] == [255, 0, 0]  # single letter r
    assert by_name["drysand"] == [191, 191, 0]  # matplotlib's y is (0.75, 0.75, 0)
    assert by_name["road"] == [128, 128, 128]  # name: gray
    assert by_name["wetsand"] == [255, 215, 0]  # last line, #FFD700


def test_labeldefs_with_trailing_space_and_no_final_newline(formats: Path) -> None:
    path = formats / "labels" / "labeldefs.txt"
    assert path.read_text().splitlines()[5].endswith(" ")  # the awkward line is still there
    assert not path.read_text().endswith("\n")
    names, colors = read_labeldefs(path)
    assert sorted(names) == MONTEREY and names[3:6] == ["drysand", "duneveg", "dune"]
    assert colors.dtype == np.uint8 and colors.shape == (15, 3)
    assert colors[names.index("dune")].tolist() == [233, 150, 122]
    assert colors[names.index("wetsand")].tolist() == [255, 215, 0]


def test_elwha_files_without_final_newline(formats: Path) -> None:
    folder = formats / "geotiff" / "elwha"
    assert not (folder / "labels.txt").read_text().endswith("\n")
    names, colors = read_classes(folder / "labels.txt", folder / "label_colors.txt")
    assert names == ["sediment", "road", "wood", "terrain", "veg", "water"]
    assert colors[-1].tolist() == [0, 0, 255]  # "b" on the unterminated last line
    assert colors[2].tolist() == [0xFF, 0xF5, 0xEE]


def test_crlf_bom_blank_lines_and_spaces(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_bytes(b"\xef\xbb\xbfwater \r\n\r\n  sand\r\nveg\t")
    (tmp_path / "colors.txt").write_bytes(b"b\r\n\r\n #FFFF00 \r\ng")
    names, colors = read_classes(tmp_path / "labels.txt", tmp_path / "colors.txt")
    assert names == ["water", "sand", "veg"]
    assert colors.tolist() == [[0, 0, 255], [255, 255, 0], [0, 128, 0]]


def test_count_mismatch_names_both_files(formats: Path) -> None:
    with pytest.raises(DltoolsError, match=r"15 classes .* 6 colours"):
        read_classes(
            formats / "labels" / "monterey_labels.txt",
            formats / "geotiff" / "elwha" / "label_colors.txt",
        )


def test_unknown_colour_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "colors.txt").write_text("r\n#00ff00\nblurple\n")
    with pytest.raises(DltoolsError, match=r"line 3: 'blurple' is not a matplotlib colour"):
        read_colors(tmp_path / "colors.txt")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("water, 0, 0, 255\nsand, 300, 0, 0\n", "line 2"),
        ("water, 0, 0\n", "line 1"),
        ("water, 0, zero, 255\n", "line 1"),
        ("water, 0, 0, 255\nwater, 1, 1, 1\n", "listed twice: water"),
        ("\n \n", "no class names"),
    ],
)
def test_bad_labeldefs(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "labeldefs.txt").write_text(text)
    with pytest.raises(DltoolsError, match=message):
        read_labeldefs(tmp_path / "labeldefs.txt")


def test_bad_labels_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("water\nsand\nwater\n")
    with pytest.raises(DltoolsError, match="listed twice: water"):
        read_labels(tmp_path / "labels.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DltoolsError, match="no colours"):
        read_colors(tmp_path / "empty.txt")
    for reader in (read_labels, read_colors, read_labeldefs):
        with pytest.raises(DltoolsError, match="file not found"):
            reader(tmp_path / "missing.txt")


def test_write_then_read(tmp_path: Path, formats: Path) -> None:
    names, colors = read_labeldefs(formats / "labels" / "labeldefs.txt")
    write_labels(tmp_path / "labels.txt", names)
    write_colors(tmp_path / "colors.txt", colors)
    assert (tmp_path / "colors.txt").read_text().splitlines()[5] == "#e9967a"
    back_names, back_colors = read_classes(tmp_path / "labels.txt", tmp_path / "colors.txt")
    assert back_names == names
    np.testing.assert_array_equal(back_colors, colors)


@pytest.mark.parametrize("names", [["a", "a"], ["a", " b"], ["a\nb"], [""], []])
def test_write_labels_refuses_names_that_would_not_read_back(tmp_path: Path, names) -> None:
    with pytest.raises(ValueError, match="class names"):
        write_labels(tmp_path / "labels.txt", names)
    assert not (tmp_path / "labels.txt").exists()


def test_write_colors_wants_uint8_rgb(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(K, 3\) uint8"):
        write_colors(tmp_path / "colors.txt", np.zeros((3, 3), float))
