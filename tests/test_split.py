"""Step 1: split a folder into train/ and test/, and cp_mat."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dltools.cli import main as dltools_main
from dltools.errors import DltoolsError
from dltools.pipeline.split import choose_train, copy_results_to_split, split_folder

REPO = Path(__file__).resolve().parents[1]
DEMO_IMAGES = REPO / "demo_data" / "images"


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """The committed demo photographs plus files a split must ignore."""
    folder = tmp_path / "images"
    shutil.copytree(DEMO_IMAGES, folder)
    (folder / "notes.txt").write_text("not an image")
    (folder / "labels.txt").write_text("water\nsand\n")
    return folder


def names(paths: list[Path]) -> list[str]:
    return sorted(p.name for p in paths)


def test_split_copies_int_p_n_images_into_sibling_folders(image_dir: Path) -> None:
    originals = sorted(p.name for p in image_dir.glob("*.jpg"))
    split = split_folder(image_dir, 0.7, seed=3)
    train_dir, test_dir = image_dir.parent / "train", image_dir.parent / "test"
    assert len(split.train) == int(0.7 * len(originals))
    assert names(split.train) == sorted(p.name for p in train_dir.iterdir())
    assert names(split.test) == sorted(p.name for p in test_dir.iterdir())
    assert sorted(names(split.train) + names(split.test)) == originals
    # copies: the source folder is untouched and the bytes are identical
    assert sorted(p.name for p in image_dir.glob("*.jpg")) == originals
    for path in split.train + split.test:
        assert path.read_bytes() == (image_dir / path.name).read_bytes()
    assert not list(image_dir.parent.glob(".*.partial"))


def test_split_is_reproducible_and_depends_on_seed(tmp_path: Path) -> None:
    listing = [f"img_{i:02d}.jpg" for i in range(20)]
    first = choose_train(listing, 0.5, seed=7)
    assert choose_train(list(reversed(listing)), 0.5, seed=7) == first
    assert len(first) == 10
    assert choose_train(listing, 0.5, seed=8) != first


def test_move_leaves_no_images_behind(image_dir: Path) -> None:
    split = split_folder(image_dir, 0.5, seed=0, move=True)
    assert not list(image_dir.glob("*.jpg"))
    assert (image_dir / "notes.txt").exists()
    assert len(split.train) + len(split.test) == len(list(DEMO_IMAGES.glob("*.jpg")))


def test_existing_split_is_never_merged_into(image_dir: Path) -> None:
    (image_dir.parent / "train").mkdir()
    with pytest.raises(DltoolsError, match="already exist"):
        split_folder(image_dir, 0.5)
    assert not (image_dir.parent / "test").exists()
    assert not list((image_dir.parent / "train").iterdir())


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 1.5, 0.01])
def test_fractions_that_leave_a_side_empty_are_refused(image_dir: Path, fraction: float) -> None:
    with pytest.raises(DltoolsError):
        split_folder(image_dir, fraction)
    assert not (image_dir.parent / "train").exists()


def test_empty_and_missing_folders_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images here")
    with pytest.raises(DltoolsError, match="no images"):
        split_folder(empty, 0.5)
    with pytest.raises(DltoolsError, match=r"not found|does not exist|no such"):
        split_folder(tmp_path / "missing", 0.5)


def test_script_runs_and_reports_errors_with_status_2(image_dir: Path) -> None:
    script = REPO / "create_library" / "images_split_train_test.py"
    args = [sys.executable, str(script), "-i", str(image_dir), "-p", "0.5", "--seed", "1"]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and "test" in done.stdout
    again = subprocess.run(args, capture_output=True, text=True, check=False)
    assert again.returncode == 2
    assert again.stderr.startswith("error:") and "Traceback" not in again.stderr
    shown = subprocess.run([*args[:2], "--help"], capture_output=True, text=True, check=True)
    assert shown.stdout.startswith("usage: images_split_train_test.py [-h]")  # not dltools split


def test_console_entry_point_dispatches_to_split(image_dir: Path, capsys) -> None:
    assert dltools_main(["split", "-i", str(image_dir), "-p", "0.25", "--seed", "0"]) == 0
    n_images = len(list(DEMO_IMAGES.glob("*.jpg")))
    assert len(list((image_dir.parent / "train").iterdir())) == int(0.25 * n_images)
    capsys.readouterr()
    assert dltools_main(["no-such-step"]) == 2
    err = capsys.readouterr().err
    assert err == "error: unknown step 'no-such-step'; dltools --help lists the steps\n"
    assert dltools_main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("dltools ")
    assert dltools_main(["--help"]) == 0
    assert "--version" in capsys.readouterr().out


def test_every_step_explains_its_options(capsys) -> None:
    from dltools.cli import STEPS

    for step in STEPS:
        with pytest.raises(SystemExit) as exit_info:
            dltools_main([step, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "usage:" in text and "--" in text
        assert "(default: None" not in text, step  # every default is said in words
        assert "(default: [" not in text, step  # lists as they are typed


def test_cp_mat_puts_results_beside_their_images(image_dir: Path, tmp_path: Path) -> None:
    split = split_folder(image_dir, 0.5, seed=0)
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    for image in split.train[:2] + split.test[:1]:
        (gt_dir / f"{image.stem}_mres.mat").write_bytes(np.arange(5).tobytes())
    (gt_dir / "orphan_mres.mat").write_bytes(b"no image")
    hidden = gt_dir / f"._{split.train[0].stem}_mres.mat"  # what macOS leaves on USB drives
    hidden.write_bytes(b"resource fork")
    copied, unmatched = copy_results_to_split(gt_dir, image_dir.parent)
    expected = {
        image.parent / f"{image.stem}_mres.mat" for image in split.train[:2] + split.test[:1]
    }
    assert set(copied) == expected and all(path.exists() for path in expected)
    assert [path.name for path in unmatched] == ["orphan_mres.mat"]
    assert not (split.train[0].parent / hidden.name).exists()
    with pytest.raises(DltoolsError, match="overwrite"):
        copy_results_to_split(gt_dir, image_dir.parent)
    assert len(copy_results_to_split(gt_dir, image_dir.parent, force=True)[0]) == 3
