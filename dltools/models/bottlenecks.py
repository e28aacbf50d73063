"""Bottlenecks: the feature vectors of tiles, computed in batches and cached on disk.

The cache of one module at one input size is a folder ``ROOT/<module key>/`` of ``.npz``
shards, each holding the SHA-1 digests of some tiles' file contents and their ``(n, D)``
float32 features. Features are looked up by content, so renamed or copied tiles reuse them;
each shard is written atomically as soon as its batches are done, so an interrupted (even
killed) run loses at most one shard and the next run resumes; it removes the staging files
that a killed run left.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from dltools.io.outputs import atomic_path, remove_stale
from dltools.io.tile_library import read_tiles
from dltools.progress import Progress, quiet

SHARD_SIZE = 256  # tiles per cache file: at most this much work is lost to a kill


class BottleneckCache:
    """Features by content digest, in ``folder``; ``None`` folder: a cache that keeps nothing."""

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = None if folder is None else Path(folder)

    def load(self) -> dict[str, np.ndarray]:
        """``{digest: (D,) float32}`` of every shard in the folder."""
        found: dict[str, np.ndarray] = {}
        if self.folder is None or not self.folder.is_dir():
            return found
        for shard in sorted(self.folder.glob("[!.]*.npz")):  # not staging files
            with np.load(shard) as data:
                found.update(zip(data["digests"].tolist(), data["features"], strict=True))
        return found

    def clean(self) -> list[Path]:
        """Remove the staging files of killed runs (not those of runs at work); return them."""
        return [] if self.folder is None else remove_stale(self.folder, None)

    def save(self, digests: Sequence[str], features: np.ndarray) -> None:
        """Add one shard (atomically)."""
        if self.folder is None or not digests:
            return
        name = hashlib.sha1("".join(digests).encode()).hexdigest()[:20]
        with atomic_path(self.folder / f"{name}.npz") as tmp:
            np.savez(tmp, digests=np.array(digests), features=features.astype(np.float32))


def compute_bottlenecks(
    paths: Sequence[str | os.PathLike],
    extract: Callable[[np.ndarray], np.ndarray],
    cache: BottleneckCache,
    batch_size: int = 64,
    progress: Progress = quiet,
    log: Callable[[str], None] = lambda _: None,
) -> np.ndarray:
    """(N, D) float32 features of the tile files ``paths``, from the cache or from ``extract``.

    ``extract`` maps a batch of (n, h, w, 3) uint8 tiles to (n, D) features. Missing tiles are
    read and extracted ``batch_size`` at a time and cached shard by shard; ``progress`` follows
    the batches; ``log`` gets a line on what the cache held.
    """
    digests = [hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in paths]
    for stale in cache.clean():
        log(f"removed {stale}, left by a run that was killed")
    known = cache.load()
    todo = sorted({d: p for d, p in zip(digests, paths, strict=True) if d not in known}.items())
    if cache.folder is not None:
        unique = len(set(digests))
        log(f"bottlenecks: {unique - len(todo)} of {unique} tiles cached, {len(todo)} to compute")
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    pending: list[tuple[str, np.ndarray]] = []
    for i, batch in enumerate(progress(batches, desc="bottlenecks", unit="batch")):
        features = extract(read_tiles([p for _, p in batch]))
        pending += zip([d for d, _ in batch], features, strict=True)
        if len(pending) >= SHARD_SIZE or i == len(batches) - 1:
            cache.save([d for d, _ in pending], np.stack([f for _, f in pending]))
            known.update(pending)
            pending = []
    if not digests:
        return np.zeros((0, 0), np.float32)
    return np.stack([known[d] for d in digests]).astype(np.float32)
