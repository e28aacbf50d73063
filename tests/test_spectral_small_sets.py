"""Small labelled sets of spectra: oversampling, augmentation, tables, and the synthetic set."""

import numpy as np
import pytest

from dltools.cli.spectral import main
from dltools.errors import DltoolsError
from dltools.spectral.augment import Augmentation, epoch_batches, oversample
from dltools.spectral.crossval import fft_magnitudes
from dltools.spectral.labelled import read_table, stratified_holdout, table_spectra
from dltools.spectral.synthetic import light_sources


def run(*argv) -> int:
    return main([str(a) for a in argv])


def test_oversampling_gives_every_class_the_largest_count():
    classes = np.array([1] * 10 + [2] * 3 + [3] * 4)
    picks = oversample(classes, np.random.default_rng(0))
    assert np.bincount(classes[picks]).tolist() == [0, 10, 10, 10]
    assert set(picks) == set(range(len(classes)))  # nobody is left out
    counts = np.bincount(picks, minlength=len(classes))
    assert counts[:10].tolist() == [1] * 10 and sorted(counts[10:13]) == [3, 3, 4]
    assert sorted(counts[13:]) == [2, 2, 3, 3]
    batches = list(epoch_batches(np.eye(17), classes, 8, Augmentation(), np.random.default_rng(1)))
    assert [len(y) for _, y in batches] == [8, 8, 8, 6]
    once = epoch_batches(np.eye(17), classes, 8, Augmentation(), np.random.default_rng(1), False)
    assert sorted(np.concatenate([x.argmax(axis=1) for x, _ in once])) == list(range(17))


def test_shift_moves_spectra_by_whole_bands_and_repeats_the_ends():
    x = np.tile(np.arange(20, dtype=np.float32), (200, 1))
    moved = Augmentation(shift=3)(x, np.random.default_rng(0))
    steps = moved[:, 10] - x[:, 10]  # interior bands: x[b - s]
    assert set(np.unique(steps).tolist()) == {-3, -2, -1, 0, 1, 2, 3}
    np.testing.assert_array_equal(moved[:, 5:15], x[:, 5:15] + steps[:, None])
    assert moved.min() == 0 and moved.max() == 19  # clamped at the ends, nothing wraps
    np.testing.assert_array_equal(x[0], np.arange(20))  # the input is left alone


def test_flip_gain_offset_noise():
    x = np.tile(np.linspace(0, 1, 50, dtype=np.float32), (400, 1))
    flipped = Augmentation(flip=True)(x, np.random.default_rng(0))
    reversed_rows = (flipped == x[:, ::-1]).all(axis=1)
    assert 0.4 < reversed_rows.mean() < 0.6
    assert ((flipped == x).all(axis=1) | reversed_rows).all()
    scaled = Augmentation(gain=0.2)(x, np.random.default_rng(0))
    factors = scaled[:, -1] / x[:, -1]
    assert 0.8 <= factors.min() < 0.85 and 1.15 < factors.max() <= 1.2
    np.testing.assert_allclose(scaled, x * factors[:, None], rtol=1e-6)
    lifted = Augmentation(offset=0.05)(x, np.random.default_rng(0)) - x
    assert np.ptp(lifted, axis=1).max() < 1e-6 and 0.04 < np.abs(lifted).max() <= 0.05
    noisy = Augmentation(noise=0.01)(x, np.random.default_rng(0)) - x
    assert noisy.std() == pytest.approx(0.01, rel=0.05)
    a = Augmentation(shift=4, gain=0.1, noise=0.01)
    np.testing.assert_array_equal(a(x, np.random.default_rng(7)), a(x, np.random.default_rng(7)))
    with pytest.raises(DltoolsError):
        Augmentation(gain=1.5)


def test_light_sources_are_seeded_shifted_and_sized_as_asked():
    a, b = light_sources(seed=3), light_sources(seed=3)
    np.testing.assert_array_equal(a.spectra, b.spectra)
    assert not np.array_equal(a.spectra, light_sources(seed=4).spectra)
    counts = np.bincount(a.labels)[1:]
    assert len(counts) == 7 and counts.min() >= 20 and counts.max() <= 80
    assert a.spectra.shape == (counts.sum(), 480) and a.spectra.dtype == np.float32
    assert 0 <= a.shifts.min() and a.shifts.max() <= 8 and np.ptp(a.shifts) > 6
    # look-alike pairs: classes 1 and 2 differ by one line, far less than 1 and 3
    t = a.templates
    assert np.abs(t[0] - t[1]).sum() < np.abs(t[0] - t[2]).sum()
    # FFT magnitudes ignore (circular) shifts
    np.testing.assert_allclose(fft_magnitudes(np.roll(t, 5, axis=1)), fft_magnitudes(t), atol=1e-3)


def test_stratified_holdout_keeps_every_class_in_training():
    values = np.array([1] * 10 + [2] * 2 + [3] * 1)
    held = stratified_holdout(values, 0.5, seed=0)
    assert [held[values == v].sum() for v in (1, 2, 3)] == [5, 1, 0]


def test_csv_table_with_header_and_named_labels(tmp_path):
    rows = ["id_is_not_here,400,401,material", "0.1,0.2,0.3,sand", "0.4,0.5,0.6,grass"]
    rows += ["0.7,0.8,0.9,sand", "1,1,1,"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    table = read_table(tmp_path / "t.csv", "material")
    assert table.spectra.shape == (4, 3) and table.spectra.dtype == np.float32
    values, names = table.classes()
    assert names == ["grass", "sand"] and values.tolist() == [2, 1, 2, 0]
    values, names = table.classes(["sand", "grass", "rock"])  # labels.txt order wins
    assert values.tolist() == [1, 2, 1, 0]
    data = table_spectra(read_table(tmp_path / "t.csv", "-1"))  # by index, from the end
    assert len(data.values) == 3 and data.names == ["grass", "sand"] and not data.held.any()


def test_npy_table_with_numeric_labels(tmp_path):
    array = np.hstack([np.array([[3], [1], [0]]), np.arange(12).reshape(3, 4)])
    np.save(tmp_path / "t.npy", array)
    table = read_table(tmp_path / "t.npy", "0")
    assert table.labels.tolist() == [3, 1, 0] and table.spectra.shape == (3, 4)
    assert read_table(tmp_path / "t.npy").labels is None


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("a,b,c\n1,2,x\n3,4,y\n", "d", "no label column 'd'"),
        ("1,2,3\n4,5,6\n", "label", "has no header row"),
        ("a,b,c\n1,oops,x\n", "c", "must hold numbers only"),
        ("a,b,c\n1,nan,x\n", "c", "row 1, band column 2 is not a finite number"),
        ("a,b,c\n1,2,x\n3,x\n", "c", "different numbers of columns"),
        ("1,2,3\n", "5", "outside its 3 columns"),
    ],
)
def test_bad_tables_are_one_line_errors(tmp_path, capsys, text, column, message):
    (tmp_path / "t.csv").write_text(text)
    args = ["--table", tmp_path / "t.csv", "--label-column", column, "-o", tmp_path / "m"]
    assert run("train-classifier", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "m").exists()
