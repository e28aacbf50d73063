"""bench/accuracy.py: the tile scores of every fold pooled into one confusion (issue #17)."""

import importlib.util
import sys
from pathlib import Path

import pytest

from dltools.engines.metrics import score

BENCH = Path(__file__).resolve().parents[1] / "bench" / "accuracy.py"


@pytest.fixture(scope="module")
def accuracy():
    spec = importlib.util.spec_from_file_location("bench_accuracy", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_tile_scores_pool_the_confusions_of_every_fold_by_class_name(accuracy):
    classes = ["water", "sediment", "vegetation"]
    # fold 1 holds no sediment tile and calls one water tile sediment: its own macro F1 counts
    # a sediment F1 of 0; fold 2 lists its classes in another order, as a tile model may
    fold1 = score([0, 0, 0, 2, 2], [0, 0, 1, 2, 2], classes).to_dict()
    fold2_classes = ["vegetation", "water", "sediment"]
    fold2 = score([2, 2, 2, 1, 0], [2, 2, 1, 1, 0], fold2_classes).to_dict()
    failed = {"error": "held-out tiles of a class the model does not know"}

    pooled = accuracy.pooled_tiles([fold1, fold2, failed], classes)

    # the same tiles scored at once: truth and prediction in `classes` order
    whole = score(
        [0, 0, 0, 2, 2, 1, 1, 1, 0, 2],
        [0, 0, 1, 2, 2, 1, 1, 0, 0, 2],
        classes,
    )
    assert pooled["n"] == 10
    assert pooled["accuracy"] == pytest.approx(whole.accuracy) == pytest.approx(0.8)
    assert pooled["macro_f1"] == pytest.approx(whole.macro_f1)
    assert pooled["macro_f1"] > fold1["macro_f1"]


def test_the_seed_reaches_every_step_and_a_variant_may_override_it(accuracy):
    from argparse import Namespace

    args = Namespace(
        seed=3, retile_args="", retrain_args="", segment_args="--refine rf", fcn_args="--seed 7"
    )

    extra = accuracy.step_arguments(args)

    assert extra["retile"] == extra["retrain"] == ["--seed", "3"]
    assert extra["segment"] == ["--seed", "3", "--refine", "rf"]
    assert extra["fcn"] == ["--seed", "3", "--seed", "7"]  # argparse keeps the last: 7
