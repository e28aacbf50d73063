"""Finished windows of one output, kept on disk so that an interrupted run resumes there.

A raster processed window by window (``segment`` on an orthomosaic larger than a block) keeps
the result of each finished window in a hidden folder beside its output,
``.resume-<output name>/``: one file per window, written atomically, so a file that exists is
complete. A run with ``--resume`` reads the finished windows back instead of computing them
again, provided the folder was made for the same inputs (``inputs.json``: the image's path,
size and time, the model's, and every setting that changes a window's result); any other run
starts the folder afresh. It is removed once the output is complete.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from dltools.io.outputs import atomic_path
from dltools.scale.executor import Executor

T = TypeVar("T")
R = TypeVar("R")

INPUTS = "inputs.json"


def file_identity(path: str | os.PathLike) -> list:
    """``[path, size, modification time]`` of a file (of a folder: of its newest file); a
    path that does not exist is itself."""
    path = Path(path)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file()]
        newest = max((p.stat().st_mtime_ns for p in files), default=0)
        return [str(path.resolve()), len(files), newest]
    if not path.exists():
        return [str(path)]
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


class Journal:
    """The finished windows of ``output`` (see the module docstring).

    Parameters
    ----------
    output : the output file the windows belong to.
    inputs : JSON-able description of everything a window's result depends on.
    resume : keep the windows of an earlier run with the same ``inputs``; otherwise (and
        whenever ``inputs`` differ) the folder starts empty.
    """

    def __init__(self, output: str | os.PathLike, inputs: Mapping[str, Any], resume: bool):
        output = Path(output)
        self.folder = output.parent / f".resume-{output.name}"
        described = json.dumps(inputs, sort_keys=True, default=str)
        kept = self.folder / INPUTS
        if not (resume and kept.is_file() and kept.read_text() == described):
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            with atomic_path(kept) as tmp:
                tmp.write_text(described)

    def _path(self, index: int) -> Path:
        return self.folder / f"window_{index:06d}.pickle"

    def finished(self) -> set[int]:
        """Indices of the windows whose results are kept."""
        return {int(p.stem.split("_")[1]) for p in self.folder.glob("window_*.pickle")}

    def read(self, index: int) -> Any:
        """The kept result of window ``index``."""
        with self._path(index).open("rb") as f:
            return pickle.load(f)

    def write(self, index: int, result: Any) -> None:
        """Keep the result of window ``index`` (atomically)."""
        with atomic_path(self._path(index)) as tmp, tmp.open("wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)

    def remove(self) -> None:
        """Remove the folder: the output is complete."""
        shutil.rmtree(self.folder, ignore_errors=True)


def run_units(
    executor: Executor, fn: Callable[[T], R], units: Sequence[T], journal: Journal | None
) -> Iterator[R]:
    """``fn(unit)`` for each of ``units``, in no set order: the results ``journal`` holds
    read back, the others run by ``executor`` and kept in ``journal`` as they finish (no
    journal: all run, none kept)."""
    finished = journal.finished() if journal is not None else set()
    todo = [i for i in range(len(units)) if i not in finished]
    for index in sorted(finished):
        yield journal.read(index)
    for k, result in executor.map_unordered(fn, [units[i] for i in todo]):
        if journal is not None:
            journal.write(todo[k], result)
        yield result
