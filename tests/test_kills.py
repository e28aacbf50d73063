"""Kill tests (issue 12): each step is killed (SIGKILL, by pid) in the middle of its work; the
rerun completes, reuses what was finished and leaves no staging files behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from processes import start, wait_until

from dltools.io.images import read_image, write_image
from dltools.io.labels import write_labels

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"
pytestmark = pytest.mark.slow


def kill_when(args: list, ready: Callable[[], bool], timeout: float = 300) -> None:
    """Run ``dltools ARGS`` and SIGKILL it (by pid) as soon as ``ready()``; fail if it ends
    first."""
    proc = start(args, stdout=subprocess.DEVNULL)
    wait_until(ready, proc, timeout)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def rerun(args: list) -> str:
    """Run ``dltools ARGS`` to the end; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "dltools", *map(str, args)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def hidden(folder: Path) -> list[Path]:
    """Staging files and folders (hidden names) anywhere under ``folder``."""
    return [p for p in folder.rglob(".*")]


def photos(folder: Path, n: int = 8) -> Path:
    """``folder`` with n demo photos, their label PNGs and labels.txt."""
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        for source in (
            DEMO / "images" / f"coast_0{i}.jpg",
            DEMO / "labels" / f"coast_0{i}_label.png",
        ):
            (folder / source.name).write_bytes(source.read_bytes())
    write_labels(folder / "labels.txt", (DEMO / "labels.txt").read_text().split())
    return folder


def test_killed_retile_is_cleaned_up_and_rerun(tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos", 3)
    args = ["retile", "-i", folder, "-l", folder / "labels.txt", "-t", 16, "--stride", 8]
    staging = lambda: any(len(list(p.glob("*/*.jpg"))) > 50 for p in folder.glob(".tile_16.*"))  # noqa: E731
    kill_when(args, staging)
    assert list(folder.glob(".tile_16.*")) and not (folder / "tile_16").exists()
    out = rerun(args)
    assert "staging folder of a run that was killed" in out
    library = folder / "tile_16"
    assert not hidden(folder) and (library / "tiles.csv").is_file()
    rows = (library / "tiles.csv").read_text().splitlines()
    assert len(rows) - 1 == len(list(library.glob("*/*.jpg"))) > 1000
    umask = os.umask(0o022)
    os.umask(umask)
    assert library.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700


def tiny_module(path: Path) -> Path:
    """A local TF-Hub feature-vector module (two convolutions, mean-pooled): slow enough to be
    killed in the middle of the bottlenecks."""
    import tensorflow as tf

    class Features(tf.Module):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.k1 = tf.Variable(rng.normal(0, 0.3, (3, 3, 3, 32)).astype(np.float32))
            self.k2 = tf.Variable(rng.normal(0, 0.1, (3, 3, 32, 32)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, x):
            y = tf.nn.relu(tf.nn.conv2d(x, self.k1, 1, "SAME"))
            y = tf.nn.relu(tf.nn.conv2d(y, self.k2, 1, "SAME"))
            return tf.reduce_mean(y, axis=[1, 2])

    tf.saved_model.save(Features(), str(path))
    return path


def test_killed_retrain_keeps_the_bottlenecks_it_computed(tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos", 4)
    rerun(["retile", "-i", folder, "-l", folder / "labels.txt", "-t", 32, "--stride", 32])
    module = tiny_module(tmp_path / "module")
    cache = tmp_path / "bottlenecks"
    args = ["retrain", "--image_dir", folder / "tile_32", "--tfhub_module", module]
    args += ["--image_size", 48, "--bottleneck_dir", cache, "--how_many_training_steps", 20]
    args += ["--legacy"]  # a frozen module: bottlenecks are cached
    args += ["--output_graph", tmp_path / "model", "--output_labels", tmp_path / "labels.txt"]
    kill_when(args, lambda: len(list(cache.glob("*/[!.]*.npz"))) >= 1)
    kept = {p.name for p in cache.glob("*/[!.]*.npz")}
    out = rerun(args)
    line = next(s for s in out.splitlines() if s.startswith("bottlenecks:"))
    cached, total = (int(v) for v in line.split()[1:4:2])
    assert 256 <= cached < total  # the killed run's shards are used, the rest computed
    assert kept <= {p.name for p in cache.glob("*/*.npz")} and not hidden(cache)
    assert (tmp_path / "model" / "saved_model.pb").is_file() and not hidden(tmp_path)


def test_killed_segment_over_a_folder_resumes_with_skip_existing(tmp_path: Path) -> None:
    import tf_keras

    from dltools.models.loader import save_model

    folder = tmp_path / "photos"
    for name in ("a", "b", "c"):
        write_image(folder / f"{name}.jpg", read_image(DEMO / "images" / "coast_01.jpg"))
    inputs = tf_keras.Input((32, 32, 3))
    pooled = tf_keras.layers.GlobalAveragePooling2D()(inputs)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(6, activation="softmax")(pooled))
    names = (DEMO / "labels.txt").read_text().split()
    save_model(model, tmp_path / "model", names, (32, 32), module="test")
    out = tmp_path / "out"
    args = ["segment", folder, "-m", tmp_path / "model", "-l", DEMO / "labels.txt", "-c"]
    args += [DEMO / "labeldefs.txt", "-t", 32, "--prob-thres", 0, "--refine", "mlp"]
    args += ["--workers", 1, "--out-dir", out]
    kill_when(args, lambda: (out / "a_ares_32.png").exists())
    done = (out / "a_ares_32.mat").stat().st_mtime_ns
    printed = rerun([*args, "--skip-existing"])
    assert "a.jpg: outputs exist, skipped" in printed
    assert (out / "a_ares_32.mat").stat().st_mtime_ns == done
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{n}_ares_32.{s}" for n in "abc" for s in ("mat", "png")]


def test_killed_fcn_training_resumes_from_its_last_epoch(tmp_path: Path) -> None:
    run = tmp_path / "run"
    data = photos(tmp_path / "photos", 3)
    args = ["fcn", "train", "--name", run, "--data-dir", data, "--labeldefs"]
    args += [DEMO / "labeldefs.txt", "--encoder-weights", "none"]
    args += ["--alpha", 0.35, "--tile-size", 64, "--batch-size", 2, "--steps-per-epoch", 2]
    args += ["--val-crops", 1, "--epochs", 2]

    def epochs_done() -> int:
        try:
            return json.loads((run / "config.json").read_text())["epochs_done"]
        except (OSError, ValueError):
            return 0

    kill_when(args, lambda: epochs_done() >= 1)
    first = json.loads((run / "config.json").read_text())["history"][0]
    rerun(["fcn", "train", "--name", run, "--resume", "--epochs", 2])
    config = json.loads((run / "config.json").read_text())
    assert config["epochs_done"] == 2 and config["history"][0] == first
    assert [h["epoch"] for h in config["history"]] == [1, 2]
    assert not hidden(run)
