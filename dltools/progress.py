"""The one progress protocol of the library: long loops go through a :class:`Progress`.

A library function that works for long takes ``progress: Progress = quiet`` and writes its
main loop as ``for item in progress(items, total=n, desc="CRF windows", unit="window")``.
``count(item)`` makes one item count for several units (the pixels of a block). The library
never draws anything itself: only :mod:`dltools.cli` passes a progress that shows (tqdm on a
terminal, plain lines in logs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Progress(Protocol):
    """Wraps an iterable and reports how far the loop over it has gone."""

    def __call__(
        self,
        items: Iterable[T],
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "item",
        count: Callable[[T], int] | None = None,
    ) -> Iterable[T]: ...


def quiet(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "item",
    count: Callable[[T], int] | None = None,
) -> Iterable[T]:
    """The silent :class:`Progress`: ``items`` unchanged."""
    return items
