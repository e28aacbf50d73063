"""The one training loop: phases, resume in the middle of a phase, early stopping."""

import numpy as np
import pytest

from dltools.errors import DltoolsError
from dltools.models import runs
from dltools.models.training import KeepBest


def test_keep_best_stops_after_patience_and_puts_the_best_weights_back():
    weights = {"now": None}
    keep = KeepBest(2, (lambda: weights["now"], lambda w: weights.update(now=w)))
    stops = []
    for epoch, score in enumerate([0.5, 0.7, 0.6, 0.7]):  # equal is no better
        weights["now"] = epoch
        stops.append(keep.update(score))
    assert stops == [False, False, False, True]
    assert keep.restore() and weights["now"] == 1 and keep.best == 0.7


def test_keep_best_without_patience_never_stops_and_without_weights_restores_nothing():
    keep = KeepBest(0)
    assert not any(keep.update(score) for score in [0.9, 0.1, 0.1, 0.1])
    assert not keep.restore() and keep.best == 0.9


def test_run_config_is_written_with_its_format_and_refused_as_another_kind(tmp_path):
    written = runs.write_config(tmp_path, {"epochs_done": 3}, "kind-a")
    assert runs.run_format(tmp_path) == "kind-a" == written["format"]
    assert runs.read_config(tmp_path, "kind-a", "a kind-a folder")["epochs_done"] == 3
    with pytest.raises(DltoolsError, match="not the config of a kind-b folder"):
        runs.read_config(tmp_path, "kind-b", "a kind-b folder")
    with pytest.raises(DltoolsError, match="not a kind-a folder"):
        runs.read_config(tmp_path / "missing", "kind-a", "a kind-a folder")
    (tmp_path / runs.CONFIG).write_text("[1, 2]")
    with pytest.raises(DltoolsError, match="no JSON object"):
        runs.read_config(tmp_path, "kind-a", "a kind-a folder")
    assert runs.run_format(tmp_path / "missing") is None


def _scripted(scores):
    """A callback that logs ``score`` = ``scores[epoch]`` after each epoch."""
    import keras

    class Scripted(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = scores[epoch]

    return Scripted()


def _model_and_data():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return model, x, y


def test_fit_runs_phases_in_turn_resumes_mid_phase_and_stops_all_phases_early():
    import keras
    import tensorflow as tf

    from dltools.models.training import EarlyStopping, Phase, fit

    model, x, y = _model_and_data()
    prepared, made = [], []

    def phase(start, end, name):
        def optimizer():
            made.append(name)
            return keras.optimizers.SGD(0.1)

        return Phase(start, end, optimizer, lambda m: prepared.append(name))

    def batches(epoch):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

    phases = [phase(0, 2, "first"), phase(2, 4, "second")]
    loss = "sparse_categorical_crossentropy"
    history = fit(model, batches, phases, loss, [], metrics=["accuracy"])
    assert history["epoch"] == [0, 1, 2, 3] and len(history["accuracy"]) == 4
    assert prepared == made == ["first", "second"]

    # resumed in the middle of the second phase: its optimiser (the checkpoint's) is kept
    optimizer = model.optimizer
    prepared.clear(), made.clear()
    history = fit(model, batches, [*phases, phase(4, 6, "third")], loss, [], epochs_done=3)
    assert history["epoch"] == [3, 4, 5] and prepared == ["second", "third"]
    assert made == ["third"] and model.optimizer is not optimizer

    # early stopping in the first phase ends the run; the best epoch's weights come back
    model, x, y = _model_and_data()
    best = {}

    class Remember(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            best[epoch] = [w.copy() for w in self.model.get_weights()]

    scores = [0.1, 0.8, 0.5, 0.4, 0.3, 0.9]
    stopping = EarlyStopping("score", patience=2, restore=True)
    callbacks = [_scripted(scores), stopping, Remember()]
    phases = [phase(0, 5, "first"), phase(5, 6, "second")]
    history = fit(model, batches, phases, loss, callbacks)
    assert history["epoch"] == [0, 1, 2, 3] and history["score"] == scores[:4]
    for now, kept in zip(model.get_weights(), best[1], strict=True):
        np.testing.assert_array_equal(now, kept)


def test_the_tile_classifier_trains_through_fit_scored_every_interval_keeping_the_best():
    import tf_keras

    from dltools.models.classifier import Evaluations, StepTrainer, random_batches
    from dltools.models.training import Phase, fit

    rng = np.random.default_rng(0)
    labels = np.array([0] * 90 + [1] * 10)  # a rare class
    data = (rng.normal(size=(100, 4)) + 3 * labels[:, None]).astype(np.float32)
    drawn = [y for _, y in random_batches(data, labels, 50, True, seed=1).take(20)]
    again = [y for _, y in random_batches(data, labels, 50, True, seed=1).take(20)]
    assert all(np.array_equal(a, b) for a, b in zip(drawn, again, strict=True))
    assert 0.4 < np.mean(np.concatenate(drawn)) < 0.6  # balanced draws: half are the rare class

    head = tf_keras.layers.Dense(2, activation="softmax")
    head.build((None, 4))

    def train(steps, interval, patience, accuracies=None):
        """Train the head; validation accuracies scripted by evaluation (else measured)."""
        seen = []

        def predict_validation():
            seen.append([w.copy() for w in head.get_weights()])
            if accuracies is None:
                return head(data).numpy()
            right = accuracies[len(seen) - 1] * len(labels)
            return np.eye(2)[np.where(np.arange(len(labels)) < right, labels, 1 - labels)]

        evaluations = Evaluations("train", interval, predict_validation, labels, patience)
        batches = random_batches(data, labels, 16, True, seed=0)
        optimizer = tf_keras.optimizers.SGD(0.5)
        trainer = StepTrainer(head, head.trainable_variables)
        fit(
            trainer,
            lambda e: batches,
            [Phase(0, steps, lambda: optimizer)],
            None,
            [evaluations],
            steps_per_epoch=1,
        )
        return evaluations.history, seen

    history, _ = train(20, 6, patience=0)
    assert [h["step"] for h in history] == [
        6,
        12,
        18,
        20,
    ]  # every interval, and after the last step
    assert history[-1]["validation_accuracy"] > 0.9 and history[-1]["train_loss"] is not None

    history, seen = train(30, 3, patience=2, accuracies=[0.5, 0.9, 0.6, 0.8, 1.0])
    assert [h["step"] for h in history] == [0, 3, 6, 9]  # scored before the first step too
    assert history[0]["train_loss"] is None and history[1]["validation_accuracy"] == 0.9
    for now, best in zip(head.get_weights(), seen[1], strict=True):
        np.testing.assert_array_equal(now, best)  # step 3's weights are back
    assert not np.array_equal(seen[1][0], seen[3][0])
