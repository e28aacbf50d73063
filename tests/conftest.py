"""Fixtures shared by all tests."""

import gc
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository (real reference data); skips the test when absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found: the real reference data is expected at {SHARED}")
    return SHARED


STMARG_HELD_OUT = ("26818", "26836", "27113")  # the last 3 frames by name: never trained on


@pytest.fixture(scope="session")
def stmarg(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The St Margaret's frames split by image, tiled once per session (96 px, purity 0.9).

    ``ROOT/train`` and ``ROOT/test`` link the 7 training and 3 held-out image/label pairs;
    keys: ``train`` / ``test`` (their tile libraries ``ROOT/<part>/tile_96``), ``labels``
    (water, sediment, vegetation = label values 1, 2, 3) and ``bottlenecks`` (a cache folder
    shared by every model trained on them).
    """
    from dltools.cli import main as dltools_main
    from dltools.io.labels import write_labels

    source = shared_dir / "data" / "stmarg" / "train"
    root = tmp_path_factory.mktemp("stmarg")
    labels = root / "labels.txt"
    write_labels(labels, ["water", "sediment", "vegetation"])
    libraries = {"labels": labels, "bottlenecks": root / "bottlenecks"}
    for part in ("train", "test"):
        folder = root / part
        folder.mkdir()
        for image in sorted(source.glob("StMarg_*.jpg")):
            number = image.stem.split("_")[1]
            if (number in STMARG_HELD_OUT) == (part == "test"):
                for file in (image, source / f"SCLS_StMarg{number}.tif"):
                    (folder / file.name).symlink_to(file)
        args = ["retile", "-i", folder, "-l", labels, "-t", 96, "-a", 0.9, "-o", folder]
        if part == "test":  # every pure tile of the held-out frames, none thinned
            args.append("--legacy")
        assert dltools_main([str(a) for a in args]) == 0
        libraries[part] = folder / "tile_96"
    return libraries


STMARG_RETRAIN = ["--how_many_training_steps", "1000", "--learning_rate", "0.01"]
STMARG_RETRAIN += ["--eval_step_interval", "100"]


@pytest.fixture(scope="session")
def stmarg_tile_model(shared_dir: Path, stmarg: dict[str, Path]) -> dict[str, Path]:
    """The tile model of the 7 training frames, trained once per session: ``retrain`` with the
    original command line (the shared MobileNetV2, 1000 steps at 0.01) and today's default
    recipe, which feeds the module the 96-px tiles at 96 px (about 2 minutes). Keys: ``folder``
    (``ROOT/recipe``), ``model``, ``labels``."""
    from dltools.cli import main as dltools_main

    folder = stmarg["train"].parent.parent / "recipe"
    module = shared_dir / "models" / "mobilenet_v2_100_feature_vector"
    model, labels = folder / "model", folder / "labels.txt"
    args = ["retrain", "--image_dir", stmarg["train"], "--tfhub_module", module]
    args += ["--output_graph", model, "--output_labels", labels]
    args += ["--bottleneck_dir", stmarg["bottlenecks"], *STMARG_RETRAIN]
    assert dltools_main([str(a) for a in args]) == 0
    return {"folder": folder, "model": model, "labels": labels}


# The test files that use the session fixtures above; under pytest-xdist they share one worker
STMARG_FILES = {
    "tests/test_eval_tiles.py",
    "tests/test_features.py",
    "tests/test_io_images.py",
    "tests/test_segment_stmarg.py",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``make test`` runs the suite in pytest-xdist workers: each test file on one worker (its
    module fixtures are built once), and the files of :data:`STMARG_FILES` on one worker
    together (the St Margaret's fixtures are built once)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::")[0]
            return "stmarg" if file in STMARG_FILES else file

    return ByFile(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """:data:`STMARG_FILES` must name every file whose tests use the St Margaret's fixtures."""
    using = {
        item.nodeid.split("::")[0]
        for item in items
        if "stmarg" in getattr(item, "fixturenames", ())
    }
    if using - STMARG_FILES:
        raise pytest.UsageError(f"add {sorted(using - STMARG_FILES)} to STMARG_FILES in conftest")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish() -> None:
    """Free what the tests left (TensorFlow graphs, above all) once the session's fixtures are
    gone, before a pytest-xdist worker reports that it has finished. Left to pytest's own
    garbage collection at exit, this can take longer than the 5 s that execnet gives a
    finished worker before it interrupts it (a KeyboardInterrupt in some ``__del__``, shown
    as a PytestUnraisableExceptionWarning, as once in a run of 655 tests on 2 busy cores)."""
    gc.collect()
