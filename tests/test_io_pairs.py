"""dltools.io.pairs: the one rule that pairs images with label files."""

import random
import re
from pathlib import Path

import pytest

from dltools.errors import DltoolsError
from dltools.io.images import list_images
from dltools.io.pairs import find_label_files, pair_images_with_labels, pairing_key


def paths(*names: str) -> list[Path]:
    return [Path("/data", name) for name in names]


def test_pairing_key() -> None:
    assert pairing_key("x/SCLS_StMarg26607.tif") == "sclsstmarg26607"
    assert pairing_key("StMarg_26607.jpg") == "stmarg26607"
    assert (
        pairing_key("D800_20160308_221825-0_gtFine_color.png") == "d800201603082218250gtfinecolor"
    )
    assert pairing_key("a.b c.JPG") == "abc"


def test_stmarg_real_names(shared_dir: Path) -> None:
    folder = shared_dir / "data" / "stmarg" / "train"
    images = [p for p in list_images(folder) if p.suffix == ".jpg"]
    labels = sorted(folder.glob("SCLS_*.tif"))
    assert len(images) == len(labels) == 10
    pairs, unpaired = pair_images_with_labels(images, labels[::-1])
    assert unpaired == [] and [image for image, _ in pairs] == images
    for image, label in pairs:
        assert re.findall(r"\d{5}", image.name) == re.findall(r"\d{5}", label.name)
    # the folder holds images and labels together: the images are never their own labels
    assert find_label_files(folder, images) == (pairs, [])


def test_dltools_formats_real_names(shared_dir: Path) -> None:
    formats = shared_dir / "data" / "dltools_formats"
    stems = ["D800_20160308_221737-0", "D800_20160308_221741-0", "D800_20160308_221825-0"]
    images = [Path("/photos", f"{stem}.jpg") for stem in stems]
    pairs, unpaired = find_label_files(formats / "gt", images, "*_mres.mat")
    assert [label.name for _, label in pairs] == [f"{stem}_mres.mat" for stem in stems]
    pairs, unpaired = find_label_files(formats / "gt", images, "*.png")
    assert [(i.name, label.name) for i, label in pairs] == [
        ("D800_20160308_221825-0.jpg", "D800_20160308_221825-0_gtFine_color.png")
    ]
    assert unpaired == images[:2]
    # elwha: the original tool wrote <name>_mres.mat and <name>mres_geo.tif
    elwha = [Path("/photos/RGBraster_geotiff.tif")]
    for pattern in ("*.mat", "*_geo.tif"):
        pairs, unpaired = find_label_files(formats / "geotiff" / "elwha", elwha, pattern)
        assert len(pairs) == 1 and unpaired == []
    with pytest.raises(DltoolsError, match="more than one label file"):
        find_label_files(formats / "geotiff" / "elwha", elwha)


@pytest.mark.parametrize(
    "label",
    [
        "site_04_mres.mat",
        "site_04_ares.mat",
        "site_04_label.png",
        "site_04_gtFine_color.png",
        "site_04_mres_geo.tif",
        "site_04mres_geo.tif",
        "SITE-04.png",
    ],
)
@pytest.mark.parametrize("image", ["site_04.jpg", "site_04.tif"])
def test_label_suffixes(image: str, label: str) -> None:
    images = paths(image, "site_4.jpg", "site_040.jpg", "site.jpg", "other_04.jpg")
    pairs, unpaired = pair_images_with_labels(images, paths(label))
    assert pairs == [(images[0], paths(label)[0])]
    assert unpaired == images[1:]


def test_numbers_do_not_cross_pair() -> None:
    images = paths("img_1.jpg", "img_10.jpg", "img_100.jpg", "1.jpg", "21.jpg")
    labels = paths(
        "img_100_label.png", "img_1_label.png", "img_10_label.png", "21_mres.mat", "1_mres.mat"
    )
    for seed in range(3):
        shuffled = labels[:]
        random.Random(seed).shuffle(shuffled)
        pairs, unpaired = pair_images_with_labels(images, shuffled)
        assert [(i.stem, label.stem) for i, label in pairs] == [
            ("img_1", "img_1_label"),
            ("img_10", "img_10_label"),
            ("img_100", "img_100_label"),
            ("1", "1_mres"),
            ("21", "21_mres"),
        ]
        assert unpaired == []


def test_unpaired_images_are_kept_and_stray_labels_ignored() -> None:
    images = paths("a_1.jpg", "a_2.jpg", "a_3.jpg")
    pairs, unpaired = pair_images_with_labels(images, paths("a_2_mres.mat", "b_7_mres.mat"))
    assert pairs == [(images[1], Path("/data/a_2_mres.mat"))]
    assert unpaired == [images[0], images[2]]


def test_longest_then_anchored_key_wins() -> None:
    images = paths("scene.jpg", "scene_a.jpg", "a.jpg", "b.jpg")
    pairs, _ = pair_images_with_labels(images, paths("scene_a_mres.mat", "b_label.png"))
    assert [(i.name, label.name) for i, label in pairs] == [
        ("scene_a.jpg", "scene_a_mres.mat"),
        ("b.jpg", "b_label.png"),  # "a" occurs inside "blabel" too, but not at an end
    ]


def test_equal_matches_are_an_error() -> None:
    with pytest.raises(DltoolsError, match="matches several images"):
        pair_images_with_labels(paths("a_1.jpg", "A1.tif"), paths("a_1_mres.mat"))


def test_find_label_files_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DltoolsError, match="folder not found"):
        find_label_files(tmp_path / "missing", [])
