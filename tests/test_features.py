"""Find more examples like this one: dltools features and dltools similar."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from dltools.cli import main as dltools_main
from dltools.io.images import write_image
from dltools.pipeline.features import nearest, read_features

DEMO = Path(__file__).resolve().parents[1] / "demo_data"
COLOURS = {"sand": (200, 180, 120), "water": (30, 60, 140)}


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory) -> Path:
    """A tile model whose probabilities follow the mean colour (sand vs water)."""
    import tf_keras

    from dltools.models.loader import save_model

    folder = tmp_path_factory.mktemp("model")
    model = tf_keras.Sequential(
        [tf_keras.Input((8, 8, 3)), tf_keras.layers.GlobalAveragePooling2D(),
         tf_keras.layers.Dense(2, activation="softmax")]
    )  # fmt: skip
    weights = np.array([[4, -4], [4, -4], [-4, 4]], np.float32)  # red+green vs blue
    model.layers[-1].set_weights([weights, np.zeros(2, np.float32)])
    save_model(model, folder / "model", list(COLOURS), (8, 8), "test")
    return folder / "model"


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """Two class folders of noisy 16-px tiles, 12 each."""
    root = tmp_path_factory.mktemp("tiles")
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (root / name).mkdir()
        for i in range(12):
            tile = np.clip(rng.normal(colour, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
            write_image(root / name / f"{name}_{i:02d}.png", tile)
    return root


def test_similar_tiles_share_the_query_class_and_come_with_a_sheet(tmp_path, library, colour_model):
    base = tmp_path / "library"
    args = ["features", str(library), "-m", str(colour_model), "-o", str(base), "--tile", "16"]
    assert dltools_main(args) == 0
    features = read_features(base)
    assert features.vectors.shape == (24, 2) and features.info["kind"] == "tile-model"
    np.testing.assert_allclose(np.linalg.norm(features.vectors, axis=1), 1, rtol=1e-5)
    assert [row["class"] for row in features.manifest] == ["sand"] * 12 + ["water"] * 12
    assert dltools_main(args) == 2  # outputs are never silently replaced

    out = tmp_path / "found"
    assert dltools_main(["similar", "14", "-f", str(base), "-k", "5", "-o", str(out)]) == 0
    with (tmp_path / "found.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["water"] * 5 and "14" not in [r["index"] for r in rows]
    similarities = [float(r["similarity"]) for r in rows]
    assert similarities == sorted(similarities, reverse=True)
    assert (tmp_path / "found.png").stat().st_size > 1000
    image_query = library / "sand" / "sand_03.png"  # a file is embedded with the set's model
    assert dltools_main(["similar", str(image_query), "-f", str(base), "-k", "3"]) == 0
    written = Path(f"{base}_similar_sand_03.csv").read_text()
    assert written.count("sand") >= 3 and "water" not in written


def test_a_grid_over_an_image_records_each_window(tmp_path, colour_model):
    image = DEMO / "images" / "coast_01.jpg"
    assert dltools_main(["features", str(image), "-m", str(colour_model), "-o", str(tmp_path / "g"),
                         "--tile", "128", "--stride", "96"]) == 0  # fmt: skip
    features = read_features(tmp_path / "g")
    rows = features.manifest
    assert {r["size"] for r in rows} == {"128"} and {r["path"] for r in rows} == {str(image)}
    assert len({(r["row"], r["col"]) for r in rows}) == len(rows) > 4


def test_bad_queries_and_broken_sets_fail_clearly(tmp_path, library, colour_model, capsys):
    base = tmp_path / "set"
    assert dltools_main(["features", str(library), "-m", str(colour_model), "-o", str(base)]) == 0
    assert dltools_main(["similar", "99", "-f", str(base)]) == 2
    assert "tile 99 is not in the feature set (0..23)" in capsys.readouterr().err
    Path(f"{base}.csv").write_text("index,path,row,col,size,class\n")
    assert dltools_main(["similar", "1", "-f", str(base)]) == 2
    assert "do not belong together" in capsys.readouterr().err


def test_a_layer_of_a_tile_model_gives_its_vectors(tmp_path, library, colour_model, capsys):
    """``features`` (every layer before the softmax) of the colour model is each tile's mean
    colour; ``final_result`` is what the model gives without --layer; other names fail."""
    from dltools.io.images import read_image

    args = ["features", str(library), "-m", str(colour_model), "--tile", "16", "-o"]
    assert dltools_main([*args, str(tmp_path / "mean"), "--layer", "features"]) == 0
    features = read_features(tmp_path / "mean")
    assert features.vectors.shape == (24, 3) and features.info["layer"] == "features"
    colours = np.array([read_image(r["path"]).mean(axis=(0, 1)) for r in features.manifest])
    colours /= np.linalg.norm(colours, axis=1, keepdims=True)
    assert np.min(np.sum(colours * features.vectors, axis=1)) > 0.999
    assert dltools_main([*args, str(tmp_path / "top"), "--layer", "final_result"]) == 0
    assert dltools_main([*args, str(tmp_path / "plain")]) == 0
    top, plain = read_features(tmp_path / "top").vectors, read_features(tmp_path / "plain").vectors
    np.testing.assert_allclose(top, plain, atol=1e-6)
    assert dltools_main([*args, str(tmp_path / "bad"), "--layer", "block_1"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "features and final_result" in err
    assert not list(tmp_path.glob("bad*"))


def test_a_layer_of_imagenet_weights_embeds_tiles(tmp_path, library, shared_dir, capsys):
    """MobileNetV2 ImageNet weights (.h5, as fcn train takes them): any layer by name,
    averaged over the tile; a TF-Hub module has no layers to choose."""
    weights = (
        shared_dir / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    )
    base = tmp_path / "mid"
    args = ["features", str(library), "-m", str(weights), "--tile", "32", "-o", str(base)]
    assert dltools_main([*args, "--layer", "block_6_expand_relu"]) == 0
    features = read_features(base)
    assert features.vectors.shape == (24, 192) and features.info["kind"] == "encoder"
    query = library / "water" / "water_05.png"  # a file is embedded with the same layer
    assert dltools_main(["similar", str(query), "-f", str(base), "-k", "3"]) == 0
    assert Path(f"{base}_similar_water_05.csv").read_text().count("water") >= 3
    module = shared_dir / "models" / "mobilenet_v2_100_feature_vector"
    hub = ["features", str(library), "-m", str(module), "-o", str(tmp_path / "hub")]
    assert dltools_main([*hub, "--layer", "block_6_expand_relu"]) == 2
    assert "a TF-Hub module gives only its feature vector" in capsys.readouterr().err


def test_the_index_finds_the_exact_neighbours_of_clustered_vectors(tmp_path):
    """20,000 vectors in 100 clusters: the index's matches are those of exact search (recall
    at 10 over 50 queries), with exact similarities, the query's own vector left out."""
    pytest.importorskip("faiss")
    from dltools.pipeline.features import build_index

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(100, 64))
    vectors = centres[rng.integers(0, 100, 20_000)] + rng.normal(scale=0.3, size=(20_000, 64))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    build_index(vectors, tmp_path / "v.faiss")
    import faiss

    index = faiss.read_index(str(tmp_path / "v.faiss"))
    recall = []
    for row in range(0, 20_000, 400):
        exact, _ = nearest(vectors, vectors[row], 10, exclude=row)
        found, scores = nearest(vectors, vectors[row], 10, exclude=row, index=index)
        assert row not in found and np.all(np.diff(scores) <= 0)
        np.testing.assert_allclose(scores, vectors[found] @ vectors[row], rtol=1e-6)
        recall.append(len(set(found) & set(exact)) / 10)
    assert np.mean(recall) >= 0.95


def test_similar_searches_the_index_of_a_set_that_has_one(tmp_path, library, colour_model, capsys):
    pytest.importorskip("faiss")
    base = tmp_path / "set"
    args = ["features", str(library), "-m", str(colour_model), "--tile", "16", "-o", str(base)]
    assert dltools_main([*args, "--layer", "features", "--index", "always"]) == 0
    assert Path(f"{base}.faiss").is_file() and read_features(base).index.ntotal == 24
    capsys.readouterr()
    for extra in ([], ["--exact"]):
        out = tmp_path / f"found{len(extra)}"
        assert (
            dltools_main(["similar", "3", "-f", str(base), "-k", "5", "-o", str(out), *extra]) == 0
        )
        assert ("search: exact" if extra else "search: index") in capsys.readouterr().out
    assert (tmp_path / "found0.csv").read_text() == (tmp_path / "found1.csv").read_text()
    assert dltools_main([*args, "--force", "--index", "never"]) == 0  # no stale index left
    assert not Path(f"{base}.faiss").exists() and read_features(base).index is None


def test_auto_indexing_starts_above_the_threshold_and_warns_without_faiss(
    tmp_path, library, colour_model, monkeypatch, capsys
):
    pytest.importorskip("faiss")
    import importlib.util

    import dltools.pipeline.features as features

    monkeypatch.setattr(features, "INDEX_ABOVE", 20)  # the library has 24 tiles
    args = ["features", str(library), "-m", str(colour_model), "--tile", "16", "-o"]
    assert dltools_main([*args, str(tmp_path / "indexed")]) == 0
    assert read_features(tmp_path / "indexed").index is not None
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    capsys.readouterr()
    assert dltools_main([*args, str(tmp_path / "plain")]) == 0
    printed = capsys.readouterr().err.splitlines()
    assert [line for line in printed if "faiss" in line] == [
        "warning: 24 vectors and no faiss-cpu to index them: `similar` will search them all "
        "(pip install 'dltools[index]', then make the set again)"
    ]
    assert Path(f"{tmp_path / 'plain'}.npy").is_file()
    assert not Path(f"{tmp_path / 'plain'}.faiss").exists()


def test_exact_search_over_chunks_matches_a_full_sort(monkeypatch):
    import dltools.pipeline.features as features

    monkeypatch.setattr(features, "SEARCH_CHUNK", 7)
    vectors = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, score = nearest(vectors, vectors[3], 6, exclude=3)
    expected = np.argsort(-(vectors @ vectors[3]))
    np.testing.assert_array_equal(index, [i for i in expected if i != 3][:6])
    assert np.all(np.diff(score) <= 0)


def _precision_at_10(vectors: np.ndarray, classes: np.ndarray) -> float:
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    top = np.argsort(-similarity, axis=1)[:, :10]
    return float(np.mean(classes[top] == classes[:, None]))


@pytest.mark.slow
def test_retrained_features_find_same_class_tiles_far_above_chance(
    shared_dir, stmarg, stmarg_tile_model, tmp_path
):
    """Held-out St Margaret's tiles: precision@10 of same-class neighbours, with the ImageNet
    module and with the tile model retrained on the other frames (tests/conftest.py), against
    chance (measured: chance 0.480, module 0.901, retrained 0.987, its features layer 0.980)."""
    module = shared_dir / "models" / "mobilenet_v2_100_feature_vector"
    model = stmarg_tile_model["model"]
    held_out = tmp_path / "held_out"  # every fifth held-out tile of each class
    for folder in sorted(p for p in stmarg["test"].iterdir() if p.is_dir()):
        (held_out / folder.name).mkdir(parents=True)
        for tile in sorted(folder.glob("*.jpg"))[::5]:
            (held_out / folder.name / tile.name).symlink_to(tile)
    found = {}
    layers = {"module": [], "retrained": [], "retrained_features": ["--layer", "features"]}
    for name, source in (("module", module), ("retrained", model), ("retrained_features", model)):
        base = tmp_path / name
        args = ["features", str(held_out), "-m", str(source), "-o", str(base), *layers[name]]
        assert dltools_main([*args, "--tile", "96"]) == 0
        features = read_features(base)
        classes = np.array([row["class"] for row in features.manifest])
        found[name] = _precision_at_10(np.asarray(features.vectors), classes)
    shares = np.unique(classes, return_counts=True)[1] / len(classes)
    chance = float(np.sum(shares**2))
    print(f"precision@10: chance {chance:.3f}, {found}")
    assert found["module"] > chance + 0.05
    assert found["retrained"] > chance + 0.15 and found["retrained"] > 0.9
    assert found["retrained_features"] > chance + 0.05
