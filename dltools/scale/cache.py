"""Objects loaded once per process: a model on a Dask worker serves every task it runs there."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

_LOADED: dict[tuple[str, Hashable], Any] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Cached:
    """A picklable reference to what ``loader(*key)`` returns, loaded at most once per process.

    Calling it returns the object: the first call in a process loads it, later calls (other
    tasks on the same Dask worker, other images of an in-process run) reuse it. ``loader`` must
    be importable by name (a module-level function), so that the reference pickles small.
    """

    loader: Callable[..., Any]
    key: tuple[Hashable, ...]

    def __call__(self) -> Any:
        name = (f"{self.loader.__module__}.{self.loader.__qualname__}", self.key)
        with _LOCK:
            if name not in _LOADED:
                _LOADED[name] = self.loader(*self.key)
            return _LOADED[name]


def loads_in_this_process() -> int:
    """How many objects this process holds in the cache (tests: a model once per worker)."""
    return len(_LOADED)
