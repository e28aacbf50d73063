"""Scale out on Dask (issue 14): ``--dask`` runs give the in-process outputs, byte for byte in
their label rasters; a worker killed mid-run loses nothing; ``--resume`` finishes an
interrupted run without redoing finished images; an unreachable scheduler is one error line.

One LocalCluster of 2 worker processes (1 thread each) serves the module; the label replay
test starts its own with ``--dask local:2``, as a user would.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from processes import Interrupter, start, wait_until
from test_segment import tile_model

from dltools.cli import main as dltools_main
from dltools.io.geo import read_raster
from dltools.io.images import read_image, write_image
from dltools.io.labels import write_labels
from dltools.scale.executor import thread_env
from dltools.synthetic.scenes import CLASS_NAMES, coastal_scene, simulate_strokes

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo_data"
ORTHO = DEMO / "geotiff" / "coast_ortho.tif"
pytestmark = pytest.mark.slow
BIG = ("--block", 256, "--refine", "crf")  # the GeoTIFF: 16 windows, each refined by the CRF


@pytest.fixture(scope="module")
def cluster():
    """The address of a LocalCluster of 2 worker processes, shared by the module's tests."""
    import logging

    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: another run may hold 8787
            silence_logs=logging.ERROR,
            env=thread_env(2),
        ) as local,
        Client(local) as client,
    ):
        client.wait_for_workers(2)
        yield local.scheduler_address, client


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Demo photos (and the demo GeoTIFF, larger than a 256-px block) with a tile model."""
    root = tmp_path_factory.mktemp("dask")
    photos = root / "photos"
    photos.mkdir()
    for i in range(1, 5):
        (photos / f"coast_0{i}.jpg").write_bytes((DEMO / "images" / f"coast_0{i}.jpg").read_bytes())
    big = root / "big"
    big.mkdir()
    (big / ORTHO.name).write_bytes(ORTHO.read_bytes())
    write_labels(root / "labels.txt", CLASS_NAMES)
    tile_model(root / "model", [coastal_scene(384, 512, seed=2)], 32)
    return {"root": root, "photos": photos, "big": big, "model": root / "model"}


def segment_args(data: dict[str, Path], source: Path, out: Path) -> list:
    args = ["segment", source, "-m", data["model"], "-l", data["root"] / "labels.txt"]
    args += ["-c", DEMO / "labeldefs.txt", "-t", 32, "--refine", "mlp", "--out-dir", out]
    return args


def run(*args: object) -> int:
    return dltools_main([str(a) for a in args])


def same_mat(a: Path, b: Path) -> None:
    left, right = scipy.io.loadmat(a), scipy.io.loadmat(b)
    for key in ("class", "sparse", "preds"):
        assert left[key].tobytes() == right[key].tobytes(), f"{a.name}: {key} differs"


def same_raster(a: Path, b: Path) -> None:
    assert read_raster(a).tobytes() == read_raster(b).tobytes(), f"{a.name} differs"


@pytest.fixture(scope="module")
def segmented(data: dict[str, Path]) -> Path:
    """The in-process outputs of segment on the photos and, in 256-px blocks, the GeoTIFF."""
    out = data["root"] / "seg_here"
    assert run(*segment_args(data, data["photos"], out)) == 0
    assert run(*segment_args(data, data["big"], out), *BIG) == 0
    return out


def test_segment_on_dask_equals_in_process(data, cluster, segmented, capsys) -> None:
    out = data["root"] / "seg_dask"
    assert run(*segment_args(data, data["photos"], out), "--dask", cluster[0]) == 0
    assert run(*segment_args(data, data["big"], out), *BIG, "--dask", cluster[0]) == 0
    printed = capsys.readouterr().out
    assert "Dask: Dask scheduler tcp://" in printed and "16 window(s)" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in segmented.iterdir())
    for mat in out.glob("*.mat"):
        same_mat(mat, segmented / mat.name)
    for tif in out.glob("*.tif"):  # the GeoTIFF's labels and probabilities, window by window
        same_raster(tif, segmented / tif.name)
    classes = read_raster(out / "coast_ortho_ares_32.tif")
    assert len(np.unique(classes)) >= 3  # a real segmentation, not one class everywhere
    # each worker loaded the model once, whatever the number of tasks it ran
    from dltools.scale.cache import loads_in_this_process

    assert set(cluster[1].run(loads_in_this_process).values()) == {1}


def untrained_run(folder: Path) -> Path:
    """An FCN run folder with an untrained network (random weights, seeded): what inference
    needs, without the minutes of training."""
    from dltools.io.labels import read_classes, write_labeldefs
    from dltools.models.runs import write_config
    from dltools.models.training import save
    from dltools.models.unet import build_fcn
    from dltools.pipeline.fcn import RUN_FORMAT
    from dltools.raster.bands import RGB8

    classes = read_classes(None, None, DEMO / "labeldefs.txt")
    folder.mkdir()
    save(build_fcn(len(classes.names), None, 0.35, seed=0), folder / "model.keras")
    write_labeldefs(folder / "labeldefs.txt", classes)
    write_config(folder, {"classes": classes.names, "bands": RGB8.to_dict()}, RUN_FORMAT)
    return folder


def test_fcn_infer_and_infer_crf_on_dask_equal_in_process(data, cluster, tmp_path) -> None:
    """On the cluster, `fcn infer` sends the GeoTIFF in 9 parts (--block 384), each a unit of
    work; the labels, the uncertainty and its ranked windows are those of the in-process run,
    which makes it in one. `infer-crf` (--block 768, both runs) sends the photo whole to a
    worker and the GeoTIFF in 4 windows."""
    model = untrained_run(tmp_path / "fcn_run")
    samples = tmp_path / "samples"
    samples.mkdir()
    for source in (DEMO / "images" / "coast_01.jpg", ORTHO):
        (samples / source.name).write_bytes(source.read_bytes())
    for command in ("infer", "infer-crf"):
        infer = ["fcn", command, "--name", model, "--samples-dir", samples, "--window", 256]
        infer += ["--overlap", 64, "--uncertainty"]
        if command == "infer-crf":
            infer += ["--block", 768, "--theta", 20]
        assert run(*infer, "--output-dir", tmp_path / "here") == 0
        parts = ["--block", 384] if command == "infer" else []
        assert run(*infer, *parts, "--output-dir", tmp_path / "dask", "--dask", cluster[0]) == 0
    here = sorted((tmp_path / "here").iterdir())
    assert [p.name for p in here] == sorted(p.name for p in (tmp_path / "dask").iterdir())
    for path in here:
        if path.suffix in (".png", ".tif"):
            same_raster(path, tmp_path / "dask" / path.name)
        elif path.suffix == ".mat":
            left, right = scipy.io.loadmat(path), scipy.io.loadmat(tmp_path / "dask" / path.name)
            assert left["class"].tobytes() == right["class"].tobytes()
        elif path.suffix in (".csv", ".geojson"):
            assert path.read_bytes() == (tmp_path / "dask" / path.name).read_bytes()


@pytest.mark.parametrize("command", ["infer", "infer-crf"])
def test_fcn_infer_resumes_a_raster_from_its_finished_parts(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GeoTIFF in 9 parts (`infer-crf`: 9 windows): interrupted after 3, `--resume` makes
    only the other 6 and writes the labels of an uninterrupted run."""
    model = untrained_run(tmp_path / "fcn_run")
    infer = ["fcn", command, "--name", model, "--samples-dir", ORTHO, "--window", 256]
    infer += ["--overlap", 64, "--block", 384, "--no-overlay", "--no-tta"]
    if command == "infer-crf":
        infer += ["--theta", 20]
    assert run(*infer, "--output-dir", tmp_path / "straight") == 0
    interrupter = Interrupter(monkeypatch)
    interrupter.stop_after = 3
    assert run(*infer, "--output-dir", tmp_path / "resumed") == 130
    tag = "fcn" if command == "infer" else "fcn_crf"
    assert [p.name for p in (tmp_path / "resumed").iterdir()] == [
        f".resume-coast_ortho_{tag}_label.tif"
    ]
    interrupter.ran.clear()
    interrupter.stop_after = None
    assert run(*infer, "--output-dir", tmp_path / "resumed", "--resume") == 0
    assert len(interrupter.ran) == 6
    name = f"coast_ortho_{tag}_label.tif"
    same_raster(tmp_path / "resumed" / name, tmp_path / "straight" / name)
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == sorted(
        p.name for p in (tmp_path / "straight").iterdir()
    )


def test_label_replay_of_a_folder_on_local_2_equals_in_process(tmp_path, capsys) -> None:
    images, strokes = tmp_path / "images", tmp_path / "strokes"
    images.mkdir()
    strokes.mkdir()
    for i in range(1, 3):
        (images / f"coast_0{i}.jpg").write_bytes((DEMO / "images" / f"coast_0{i}.jpg").read_bytes())
        labels = read_image(DEMO / "labels" / f"coast_0{i}_label.png")[..., 0]
        write_image(strokes / f"coast_0{i}_doodles.png", simulate_strokes(labels, seed=i))
    (images / ORTHO.name).write_bytes(ORTHO.read_bytes())  # 4 windows of --block 800
    geojson = DEMO / "doodles" / "coast_ortho_doodles.geojson"
    (strokes / geojson.name).write_bytes(geojson.read_bytes())
    (images / "coast_07.jpg").write_bytes((DEMO / "images" / "coast_07.jpg").read_bytes())
    args = ["label", "-i", images, "--doodles", strokes, "-l", DEMO / "labels.txt"]
    args += ["-c", DEMO / "colors.txt", "-s", 0.5, "--confidence", "--block", 800]
    assert run(*args, "--out-dir", tmp_path / "here") == 0
    capsys.readouterr()
    start = time.monotonic()
    assert run(*args, "--out-dir", tmp_path / "dask", "--dask", "local:2") == 0
    seconds = time.monotonic() - start
    printed = capsys.readouterr()
    dashboard = "Dask: LocalCluster of 2 worker process(es), dashboard http://127.0.0.1:"
    assert dashboard in printed.out
    # the photos (768 x 512) are units of work; the client hands out the GeoTIFF's 4 windows
    assert "images: 2/2 image" in printed.err and "coast_ortho.tif: 4/4 window" in printed.err
    print(f"label replay on local:2: {seconds:.1f} s")
    here = sorted(p.name for p in (tmp_path / "here").iterdir())
    assert here == sorted(p.name for p in (tmp_path / "dask").iterdir())
    assert "coast_07_mres.mat" not in here  # no strokes: left out (and listed)
    assert "coast_ortho_mres_geo.tif" in here and "coast_ortho_mres.mat" not in here  # windows
    for name in here:
        if name.endswith(("_label.png", "_geo.tif", "_confidence.tif", "_confidence.png")):
            same_raster(tmp_path / "here" / name, tmp_path / "dask" / name)
        elif name.endswith(".mat"):
            same_mat(tmp_path / "here" / name, tmp_path / "dask" / name)


def test_a_worker_killed_mid_run_loses_nothing(data, cluster, segmented, tmp_path) -> None:
    address, client = cluster
    out = tmp_path / "out"
    proc = start([*segment_args(data, data["photos"], out), "--dask", address])

    def busy_worker() -> int | None:
        busy = [w for w, tasks in client.processing().items() if tasks]
        return client.run(os.getpid, workers=busy[:1])[busy[0]] if busy else None

    wait_until(lambda: len(list(out.glob("*.png"))) >= 1 and busy_worker() is not None, proc)
    pid = busy_worker()
    os.kill(pid, signal.SIGKILL)  # a worker dies in the middle of an image
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in segmented.iterdir() if p.name.startswith("coast_0")
    )  # every output, and no staging file of the killed worker
    for mat in out.glob("*.mat"):
        same_mat(mat, segmented / mat.name)
    client.wait_for_workers(2)  # the nanny restarts the worker for the next tests


def test_an_interrupted_run_resumes_without_redoing_finished_images(
    data, cluster, segmented, tmp_path
) -> None:
    """Each photo four times (copies are named <stem>_copyK), so that work is left when the
    run is interrupted after its first output."""
    folder = tmp_path / "photos"
    folder.mkdir()
    copies = 4
    for image in sorted(data["photos"].iterdir()):
        for k in range(copies):
            (folder / f"{image.stem}_copy{k}{image.suffix}").write_bytes(image.read_bytes())
    (folder / "broken.jpg").write_bytes((folder / "coast_01_copy0.jpg").read_bytes()[:3000])
    total = len(list(folder.iterdir())) - 1
    out = tmp_path / "out"
    args = [*segment_args(data, folder, out), "--dask", cluster[0], "--keep-going"]
    proc = start(args)
    wait_until(lambda: len(list(out.glob("*.mat"))) >= 1, proc)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    code = proc.wait(timeout=60)
    done = len([p for p in out.glob("*.mat") if not p.name.startswith(".")])
    assert code == 130, f"exit {code}, {done} of {total} done: {proc.stderr.read()[-1500:]}"
    time.sleep(1)  # units already running on the workers end (their outputs are whole)
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mat")}
    assert 1 <= len(finished) < total
    resumed = start([*args, "--resume"])
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 2  # the broken image failed ...
    assert "broken.jpg" in stderr and stderr.count("failed: ") == 1
    for name in finished:  # ... the finished ones were not redone ...
        assert f"{name.replace('_ares_32.mat', '.jpg')}: outputs exist, skipped" in stdout
        assert (out / name).stat().st_mtime_ns == finished[name]
    reference = [p for p in segmented.iterdir() if p.name.startswith("coast_0")]
    expected = [
        p.name.replace(f"{p.name[:8]}_", f"{p.name[:8]}_copy{k}_", 1)
        for p in reference
        for k in range(copies)
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)  # ... the others are done
    for mat in out.glob("*.mat"):
        original = mat.name[:8] + mat.name[8 + len("_copyK") :]
        same_mat(mat, segmented / original)


def test_an_unreachable_scheduler_is_one_error_line_within_seconds(data, capsys) -> None:
    start = time.monotonic()
    code = run(
        *segment_args(data, data["photos"], data["root"] / "x"), "--dask", "tcp://127.0.0.1:9"
    )
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - start < 15
    assert err.startswith("error: --dask tcp://127.0.0.1:9: no Dask scheduler answered")
    assert len(err.strip().splitlines()) == 1 and not (data["root"] / "x").exists()


def test_eval_pixels_on_dask_equals_in_process(data, cluster, segmented, tmp_path) -> None:
    args = ["eval-pixels", "-i", segmented, "--true-dir", DEMO / "labels"]
    args += ["--true-glob", "*_label.png", "-l", DEMO / "labels.txt", "--allow-missing"]
    assert run(*args, "-o", tmp_path / "here") == 0
    assert run(*args, "-o", tmp_path / "dask", "--dask", cluster[0]) == 0
    for name in ("pixel_metrics.csv", "pixel_summary.json"):
        here = (tmp_path / "here" / name).read_text()
        assert here == (tmp_path / "dask" / name).read_text()
    assert here.count('"image"') == 0 and len(here) > 100


def test_retile_on_dask_makes_the_same_library(data, cluster, tmp_path) -> None:
    args = ["retile", "-i", data["photos"], "--label-dir", DEMO / "labels", "-l"]
    args += [DEMO / "labels.txt", "-t", 32, "-a", 0.9, "-b", 0.5]
    assert run(*args, "-o", tmp_path / "here") == 0
    assert run(*args, "-o", tmp_path / "dask", "--dask", cluster[0]) == 0
    here = sorted(p.relative_to(tmp_path / "here") for p in (tmp_path / "here").rglob("*"))
    assert len(here) > 100
    assert here == sorted(p.relative_to(tmp_path / "dask") for p in (tmp_path / "dask").rglob("*"))
    for path in here:
        if (tmp_path / "here" / path).is_file():
            left, right = tmp_path / "here" / path, tmp_path / "dask" / path
            assert left.read_bytes() == right.read_bytes()


def test_retile_measures_the_class_widths_on_dask_as_here(data, cluster) -> None:
    from dltools.io.discovery import find_labelled_images
    from dltools.pipeline.retile import class_widths
    from dltools.scale.executor import DaskExecutor

    pairs, _ = find_labelled_images(data["photos"], DEMO / "labels")
    here = class_widths(pairs, CLASS_NAMES)
    assert len(pairs) == 4 and here["foam"] < here["water"]
    assert class_widths(pairs, CLASS_NAMES, executor=DaskExecutor(cluster[1])) == here


def test_spectral_encode_and_predict_on_dask_equal_in_process(cluster, tmp_path, capsys) -> None:
    """A 64 x 80 cube in 6 windows of 32 px, a corner of it nodata: predict and encode under
    --dask give the in-process GeoTIFFs (class maps exactly, floats to rounding) and print the
    same class counts, for a GeoTIFF (read on the workers) and a .npy (read here)."""
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    from dltools.io.geo import write_raster
    from dltools.spectral.synthetic import spectral_scene

    scene = spectral_scene(64, 80, 24, seed=0)
    grid = {"width": 80, "height": 64, "crs": CRS.from_epsg(32633)}
    grid["transform"] = Affine(5.0, 0.0, 350000.0, 0.0, -5.0, 5600000.0)
    cube = scene.cube.copy()
    cube[:10, :12] = -1
    write_raster(tmp_path / "scene.tif", cube, grid, nodata=-1)
    write_raster(tmp_path / "labels.tif", scene.labels, grid)
    np.save(tmp_path / "array.npy", scene.cube)
    train = ["-i", tmp_path / "scene.tif", "--epochs", 1, "--seed", 0]
    label_raster = ["-r", tmp_path / "labels.tif"]
    assert run("spectral", "train-classifier", *train, *label_raster, "-o", tmp_path / "clf") == 0
    assert run("spectral", "train-ae", *train, "-o", tmp_path / "ae") == 0
    capsys.readouterr()
    printed = {}
    for where, dask in (("here", []), ("dask", ["--dask", cluster[0]])):
        for name in ("scene.tif", "array.npy"):
            args = ["-i", tmp_path / name, "--block", 32, "-o", tmp_path / where, *dask]
            assert run("spectral", "predict", "-m", tmp_path / "clf", *args) == 0
        args = ["-i", tmp_path / "scene.tif", "--block", 32, "-o", tmp_path / where, *dask]
        assert run("spectral", "encode", "-m", tmp_path / "ae", *args, "--no-figure") == 0
        out = capsys.readouterr().out
        assert ("Dask: Dask scheduler tcp://" in out) == bool(dask)
        printed[where] = [line for line in out.splitlines() if " px " in line]
    assert printed["here"] == printed["dask"] and len(printed["here"]) == 2 * 7
    for name in ("scene_classes.tif", "array_classes.tif"):
        classes = read_raster(tmp_path / "here" / name)
        assert len(np.unique(classes)) >= 3
        same_raster(tmp_path / "dask" / name, tmp_path / "here" / name)
    assert (read_raster(tmp_path / "here" / "scene_classes.tif")[:10, :12] == 0).all()
    for name in ("scene_scores.tif", "array_scores.tif", "scene_latent.tif"):
        here, there = (read_raster(tmp_path / w / name) for w in ("here", "dask"))
        np.testing.assert_allclose(there, here, rtol=1e-5, atol=1e-6)
        assert np.isnan(here[:10, :12]).all() == name.startswith("scene")
