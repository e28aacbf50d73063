"""Find more examples like this one: embed tiles as feature vectors, and search them.

:func:`embed` turns the tiles of a tile library (step 3's class folders) or a sliding grid
over images and GeoTIFFs (read window by window) into one feature vector each, through a
TF-Hub module (its feature vector) or a trained tile model (its class probabilities). The
feature set is three files sharing a base name::

    OUT.npy    (N, D) float32 feature vectors, each of unit length (cosine = dot product)
    OUT.csv    the manifest: index, path, row, col, size, class (library tiles) per vector
    OUT.json   the model, its layer, the tile size and the vector length it was made with
    OUT.faiss  beyond INDEX_ABOVE vectors (or when asked): an inverted-file index of 8-bit
               quantised vectors (faiss-cpu, the optional extra ``dltools[index]``)

:func:`nearest` returns the ``k`` vectors most similar to a query: exact cosine search, in
chunks, up to about a million vectors; with an index, the index proposes candidates from the
nearest of its clusters and they are scored exactly (approximate: a true neighbour in a
cluster not visited is missed; ``bench/similar.py`` measures how often).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltools.errors import DltoolsError, DltoolsWarning
from dltools.io.geo import Window, open_raster, read_raster
from dltools.io.images import list_images
from dltools.io.outputs import atomic_path, ensure_new
from dltools.io.tile_library import list_tile_classes, read_tiles
from dltools.models.metadata import read_metadata
from dltools.progress import Progress, quiet
from dltools.raster.bands import rgb8
from dltools.raster.windows import tile_origins

FORMAT = "dltools-features"
SUFFIXES = (".npy", ".csv", ".json")
INDEX_SUFFIX = ".faiss"
FIELDS = ("index", "path", "row", "col", "size", "class")
SEARCH_CHUNK = 65536  # vectors scored per matrix product
INDEX_ABOVE = 1_000_000  # feature sets with more vectors get an index (INDEXING "auto")
INDEXING = ("auto", "always", "never")
PROBES = 32  # clusters of the index visited per query
CANDIDATES = 4  # candidates the index proposes per match wanted, then scored exactly


@dataclass(frozen=True)
class FeatureSet:
    """Unit-length ``vectors`` (N, D) float32 and their ``manifest`` rows; ``info``: the model
    (``model``, ``kind``, ``layer``), ``tile`` size and ``dimensions`` they were made with;
    ``index``: the set's faiss index, or None."""

    vectors: np.ndarray
    manifest: list[dict[str, str]]
    info: dict
    index: object | None = None  # a faiss index over the vectors (see build_index), or None


def feature_paths(base: str | os.PathLike) -> list[Path]:
    """``base.npy``, ``base.csv`` and ``base.json`` (a suffix of these on ``base`` is dropped)."""
    base = Path(base)
    if base.suffix in SUFFIXES:
        base = base.with_suffix("")
    return [Path(f"{base}{suffix}") for suffix in SUFFIXES]


def index_path(base: str | os.PathLike) -> Path:
    """``base.faiss``: the feature set's index (see :func:`build_index`)."""
    return feature_paths(base)[0].with_suffix(INDEX_SUFFIX)


def _faiss():
    try:
        import faiss
    except ImportError:
        raise DltoolsError(
            "an index needs faiss-cpu: pip install 'dltools[index]' (or --index never)"
        ) from None
    return faiss


def build_index(vectors: np.ndarray, path: str | os.PathLike, seed: int = 0) -> None:
    """Write an index of (N, D) float32 unit ``vectors`` (a memory map is read in chunks) to
    ``path``: an inverted file of about 4 sqrt(N) clusters (k-means on a sample, ``seed``)
    holding the vectors quantised to 8 bits per dimension, searched by inner product."""
    faiss = _faiss()
    count, dimensions = vectors.shape
    clusters = int(np.clip(4 * np.sqrt(count), 1, max(1, count // 39)))
    index = faiss.index_factory(dimensions, f"IVF{clusters},SQ8", faiss.METRIC_INNER_PRODUCT)
    faiss.extract_index_ivf(index).cp.seed = seed
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(count, min(count, 64 * clusters), replace=False))
    index.train(np.ascontiguousarray(vectors[sample], np.float32))
    for start in range(0, count, SEARCH_CHUNK):
        index.add(np.ascontiguousarray(vectors[start : start + SEARCH_CHUNK], np.float32))
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))


def embedder(
    model: str | os.PathLike, tile: int, layer: str | None = None
) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """``(embed, kind)``: (N, h, w, 3) uint8 tiles -> (N, D) float32 vectors through ``model``.

    - A SavedModel folder written by dltools (``dltools.json`` inside) or a ``.keras`` /
      ``.pb`` tile model ("tile-model") gives its class probabilities, or with ``layer`` that
      layer's output (see :func:`dltools.models.loader.load_layer`: ``features`` is the
      feature vector its softmax reads, retrained or not).
    - A ``.h5`` file of Keras' MobileNetV2 ImageNet weights without the top (as ``fcn train
      --encoder-weights`` takes) ("encoder") gives the mean of its layer ``layer`` (default
      ``out_relu``) over each tile at ``tile`` px.
    - Any other SavedModel folder is read as a TF-Hub module giving its feature vector at
      ``tile`` px ("module"); it has no layers to choose.

    Layers that keep rows and columns are averaged over them.
    """
    path = Path(model)
    if not path.exists():
        raise DltoolsError(f"{path}: model not found")
    from dltools.models.loader import load_layer, load_model, prepare_images  # TensorFlow

    if path.is_file() and path.suffix == ".h5":
        from dltools.models.unet import BOTTOM, encoder_layer

        encoder = encoder_layer(path, layer or BOTTOM)
        return (lambda tiles: encoder(tiles.astype(np.float32), training=False).numpy()), "encoder"
    if read_metadata(path) or path.is_file():
        if layer is None:
            return load_model(path).predict, "tile-model"
        forward, size = load_layer(path, layer)
        return (lambda tiles: forward(prepare_images(tiles, size)).numpy()), "tile-model"
    if layer is not None:
        raise DltoolsError(
            f"{path}: a TF-Hub module gives only its feature vector; --layer takes a tile "
            "model (SavedModel or .keras) or MobileNetV2 ImageNet weights (.h5)"
        )
    from dltools.models.hub import feature_layer

    layer = feature_layer(str(path))
    size = (tile, tile)
    return (lambda tiles: layer(prepare_images(tiles, size)).numpy()), "module"


def library_tiles(tile_dir: str | os.PathLike) -> list[dict[str, str]]:
    """Manifest rows of every tile of a tile library (class subfolders), class by class."""
    rows = []
    for name, paths in list_tile_classes(tile_dir).items():
        rows += [{"path": str(p), "row": "", "col": "", "size": "", "class": name} for p in paths]
    return rows


def grid_tiles(images: Sequence[Path], tile: int, stride: int) -> list[dict[str, str]]:
    """Manifest rows of a grid of ``tile`` px windows every ``stride`` px over each image
    (the last row and column aligned with the edges); images smaller than a tile are skipped."""
    rows = []
    for path in images:
        with open_raster(path) as src:
            height, width = src.height, src.width
        if min(height, width) < tile:
            continue
        rows += [
            {"path": str(path), "row": str(row), "col": str(col), "size": str(tile), "class": ""}
            for row in tile_origins(height, tile, stride).tolist()
            for col in tile_origins(width, tile, stride).tolist()
        ]
    return rows


def _read(rows: Sequence[dict[str, str]]) -> np.ndarray:
    """(n, h, w, 3) uint8 tiles of manifest rows (whole files, or windows of images)."""
    if not rows[0]["size"]:
        return read_tiles([row["path"] for row in rows])
    tiles = []
    for row in rows:
        size = int(row["size"])
        window = Window(int(row["col"]), int(row["row"]), size, size)
        tiles.append(rgb8(read_raster(row["path"], window), row["path"]))
    return np.stack(tiles)


def embed(
    source: str | os.PathLike,
    model: str | os.PathLike,
    out: str | os.PathLike,
    tile: int = 224,
    stride: int | None = None,
    batch_size: int = 64,
    force: bool = False,
    progress: Progress = quiet,
    layer: str | None = None,
    indexing: str = "auto",
) -> FeatureSet:
    """Embed ``source`` (a tile library folder, an image or a folder of images) with
    ``model`` and its ``layer`` (see :func:`embedder`) and write the feature set ``out`` (see
    the module docstring). Images are cut into ``tile`` px windows every ``stride`` px
    (default: no overlap); library tiles are used whole. ``indexing``: write ``OUT.faiss``
    (:func:`build_index`) "always", "never", or when there are more than
    :data:`INDEX_ABOVE` vectors ("auto"). Returns what was written.
    """
    if indexing not in INDEXING:
        raise ValueError(f"indexing must be one of {INDEXING}, got {indexing!r}")
    paths = feature_paths(out)
    ensure_new([*paths, index_path(out)], force)
    if indexing == "always":
        _faiss()  # fail before the work
    source = Path(source)
    if source.is_dir() and any(p.is_dir() for p in source.iterdir()):
        rows = library_tiles(source)
    else:
        images = list_images(source) if source.is_dir() else [source]
        rows = grid_tiles(images, tile, stride or tile)
    if not rows:
        raise DltoolsError(f"{source}: no tiles to embed (images smaller than {tile} px?)")
    embed_tiles, kind = embedder(model, tile, layer)
    parts = []
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    for batch in progress(batches, total=len(rows), desc="tiles", unit="tile", count=len):
        parts.append(np.asarray(embed_tiles(_read(batch)), np.float32))
    vectors = _unit(np.concatenate(parts))
    manifest = [{"index": str(i), **row} for i, row in enumerate(rows)]
    info = {"format": FORMAT, "model": str(model), "kind": kind, "layer": layer, "tile": tile}
    info["dimensions"] = int(vectors.shape[1])
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(paths[0]) as tmp, tmp.open("wb") as f:
        np.save(f, vectors)
    with atomic_path(paths[1]) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(manifest)
    with atomic_path(paths[2]) as tmp:
        tmp.write_text(json.dumps(info, indent=1) + "\n")
    index_path(out).unlink(missing_ok=True)  # replaced with force: never a stale index
    wanted = indexing == "always" or (indexing == "auto" and len(vectors) > INDEX_ABOVE)
    if wanted and indexing == "auto" and importlib.util.find_spec("faiss") is None:
        warnings.warn(
            f"{len(vectors):,} vectors and no faiss-cpu to index them: `similar` will search "
            "them all (pip install 'dltools[index]', then make the set again)",
            DltoolsWarning,
            stacklevel=2,
        )
    elif wanted:
        build_index(vectors, index_path(out))
    return read_features(out)


def read_features(base: str | os.PathLike) -> FeatureSet:
    """The feature set written by :func:`embed` at ``base``, checked to be whole."""
    npy, manifest_path, info_path = feature_paths(base)
    missing = [p for p in (npy, manifest_path, info_path) if not p.is_file()]
    if missing:
        raise DltoolsError(f"{base}: not a feature set (missing {', '.join(map(str, missing))})")
    info = json.loads(info_path.read_text())
    if info.get("format") != FORMAT:
        raise DltoolsError(f"{info_path}: not a dltools feature set")
    vectors = np.load(npy, mmap_mode="r")
    with manifest_path.open(newline="") as f:
        manifest = list(csv.DictReader(f))
    if vectors.shape != (len(manifest), info["dimensions"]):
        raise DltoolsError(
            f"{base}: {vectors.shape[0]} vectors of {vectors.shape[1]} but the manifest lists "
            f"{len(manifest)} tiles of {info['dimensions']}: the files do not belong together"
        )
    index = None
    if index_path(base).is_file():
        index = _faiss().read_index(str(index_path(base)))
        if (index.ntotal, index.d) != vectors.shape:
            raise DltoolsError(
                f"{index_path(base)} indexes {index.ntotal} vectors of {index.d}, not the set's "
                f"{vectors.shape[0]} of {vectors.shape[1]}: remove it or make the set again"
            )
    return FeatureSet(vectors, manifest, info, index)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def nearest(
    vectors: np.ndarray,
    query: np.ndarray,
    k: int,
    exclude: int | None = None,
    index: object | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``vectors`` (N, D) most similar to ``query`` (D,) by cosine, best
    first: ``(indices (k,) int64, similarities (k,) float32)``; ``exclude``: a row left out
    (the query's own). Exact search in chunks of :data:`SEARCH_CHUNK` rows; with ``index``
    (:func:`build_index`), :data:`CANDIDATES` per match from the :data:`PROBES` nearest
    clusters, scored exactly."""
    query = _unit(np.asarray(query, np.float32)[None])[0]
    if index is not None:
        index.nprobe = PROBES
        _, found = index.search(query[None], k * CANDIDATES + 1)
        left_out = -1 if exclude is None else exclude
        found = np.unique(found[0][(found[0] >= 0) & (found[0] != left_out)])
        scores = np.asarray(vectors[found]) @ query  # rows in order: a memory map reads fast
        keep = np.argsort(-scores, kind="stable")[:k]
        return found[keep].astype(np.int64), scores[keep].astype(np.float32)
    best_index = np.zeros(0, np.int64)
    best_score = np.zeros(0, np.float32)
    for start in range(0, len(vectors), SEARCH_CHUNK):
        scores = np.asarray(vectors[start : start + SEARCH_CHUNK]) @ query
        if exclude is not None and start <= exclude < start + len(scores):
            scores[exclude - start] = -np.inf
        index = np.concatenate([best_index, np.arange(start, start + len(scores))])
        score = np.concatenate([best_score, scores])
        keep = np.argsort(-score, kind="stable")[:k]
        best_index, best_score = index[keep], score[keep]
    keep = np.isfinite(best_score)
    return best_index[keep], best_score[keep]


@dataclass(frozen=True)
class Match:
    """One tile found by :func:`similar`: its rank (1 = most similar), cosine similarity and
    manifest row."""

    rank: int
    similarity: float
    tile: dict[str, str]


def similar(
    features: FeatureSet, query: int | str | os.PathLike, k: int = 20, exact: bool = False
) -> tuple[np.ndarray, list[Match]]:
    """The ``k`` tiles of ``features`` most like ``query``: a manifest index (the tile itself
    is left out) or an image file (embedded whole with the set's model, at its tile size),
    through the set's index if it has one and not ``exact``. Returns the query tile
    ((h, w, 3) uint8) and the matches, best first."""
    if isinstance(query, int) or str(query).isdigit():
        row = int(query)
        if not 0 <= row < len(features.manifest):
            raise DltoolsError(
                f"tile {row} is not in the feature set (0..{len(features.manifest) - 1})"
            )
        picture, vector, exclude = _read([features.manifest[row]])[0], features.vectors[row], row
    else:
        picture = read_tiles([query])[0]
        info = features.info
        embed_tile, _ = embedder(info["model"], info["tile"], info.get("layer"))
        vector, exclude = embed_tile(picture[None])[0], None
        if len(vector) != features.info["dimensions"]:
            raise DltoolsError(f"{query}: its vector does not match the feature set's")
    index = None if exact else features.index
    indices, scores = nearest(features.vectors, vector, k, exclude, index)
    matches = [
        Match(rank + 1, float(score), features.manifest[int(i)])
        for rank, (i, score) in enumerate(zip(indices, scores, strict=True))
    ]
    return picture, matches


def match_pictures(matches: Sequence[Match]) -> list[np.ndarray]:
    """The (h, w, 3) uint8 tile of each match, for a contact sheet."""
    return [_read([m.tile])[0] for m in matches]


def write_matches(path: str | os.PathLike, matches: Sequence[Match]) -> None:
    """A CSV of the matches: rank, similarity and the manifest columns."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["rank", "similarity", *FIELDS])
        writer.writeheader()
        for m in matches:
            writer.writerow({"rank": m.rank, "similarity": f"{m.similarity:.6f}", **m.tile})
