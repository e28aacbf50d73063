"""The one executor of every batch step: run units of work here, or on a Dask cluster.

A step hands its units of work (one image of a folder, or one window of a raster larger than
a block) to an :class:`Executor` and consumes the outcomes as they finish:

- :class:`InProcess` (no ``--dask``): each unit runs in this process when its outcome is
  asked for, one after the other; nothing of Dask is imported.
- :class:`DaskExecutor` (``--dask local[:N]`` or ``--dask tcp://host:8786``): units are
  submitted to a Dask cluster, at most ``limit`` in flight (so the client's memory holds at
  most that many results); a worker that dies takes no result with it, the scheduler runs its
  units again elsewhere.

Units must be deterministic functions of their inputs, so that where they run changes nothing:
the outputs of a Dask run are those of an in-process run, byte for byte.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from dltools.errors import DltoolsError

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT = 5.0  # seconds to reach a scheduler before --dask ADDRESS is an error
IN_FLIGHT_PER_WORKER = 2  # units submitted per worker at a time (bounds the client's memory)
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


@dataclass
class Outcome:
    """How unit ``index`` ended: its ``value``, or the ``error`` it raised."""

    index: int
    value: Any = None
    error: BaseException | None = None


class Executor:
    """Where units of work run (see the module docstring). This base class is in-process."""

    name = "in-process"
    dashboard: str | None = None
    remote = False  # True: units run in other processes (print nothing there, load per worker)
    workers = 1

    def outcomes(
        self, fn: Callable[[T], R], items: Iterable[T], limit: int | None = None
    ) -> Iterator[Outcome]:
        """:class:`Outcome` of ``fn(item)`` for each item, in the order they finish; at most
        ``limit`` (default: :data:`IN_FLIGHT_PER_WORKER` per worker) run or wait at a time.
        Closing the iterator early cancels the units not yet finished."""
        for index, item in enumerate(items):
            try:
                value = fn(item)
            except Exception as err:
                yield Outcome(index, error=err)
            else:
                yield Outcome(index, value)

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T], limit: int | None = None
    ) -> Iterator[tuple[int, R]]:
        """``(index, fn(item))`` in the order they finish; the first error is raised (and the
        other units cancelled)."""
        for outcome in self.outcomes(fn, items, limit):
            if outcome.error is not None:
                raise outcome.error
            yield outcome.index, outcome.value

    def close(self) -> None:
        """Release the cluster (a LocalCluster stops; a remote scheduler is left running)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


InProcess = Executor


class DaskExecutor(Executor):
    """Units run on a Dask cluster through a ``distributed.Client``."""

    remote = True

    def __init__(self, client: Any, cluster: Any = None, name: str = "dask"):
        self.client, self.cluster, self.name = client, cluster, name
        info = client.scheduler_info()
        self.workers = max(1, len(info.get("workers", {})))
        self.dashboard = client.dashboard_link if "dashboard" in info.get("services", {}) else None

    def outcomes(
        self, fn: Callable[[T], R], items: Iterable[T], limit: int | None = None
    ) -> Iterator[Outcome]:
        from distributed import as_completed

        limit = limit or IN_FLIGHT_PER_WORKER * max(self.workers, self._workers_now())
        tag = f"{getattr(fn, '__name__', 'unit')}-{uuid.uuid4().hex[:8]}"
        pending = iter(enumerate(items))
        index_of: dict[str, int] = {}
        running = as_completed()

        def submit_next() -> bool:
            nxt = next(pending, None)
            if nxt is None:
                return False
            future = self.client.submit(fn, nxt[1], key=f"{tag}-{nxt[0]}", pure=False)
            index_of[future.key] = nxt[0]
            running.add(future)
            return True

        for _ in range(limit):
            if not submit_next():
                break
        try:
            for future in running:
                index = index_of.pop(future.key)
                try:
                    outcome = Outcome(index, future.result())
                except Exception as err:
                    outcome = Outcome(index, error=err)
                future.release()
                submit_next()
                yield outcome
        finally:
            self.client.cancel(list(running.futures))

    def _workers_now(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def parse_dask(spec: str) -> tuple[str, int | str | None]:
    """``("local", N or None)`` for ``local`` / ``local:N``, ``("address", spec)`` otherwise;
    DltoolsError for a malformed value."""
    if spec == "local" or spec.startswith("local:"):
        count = spec.partition(":")[2]
        if not count:
            return "local", None
        if not count.isdigit() or int(count) < 1:
            raise DltoolsError(f"--dask {spec}: N in local:N must be a whole number >= 1")
        return "local", int(count)
    if not spec or any(c.isspace() for c in spec):
        raise DltoolsError(f"--dask {spec!r}: expected local, local:N or an address (tcp://h:p)")
    return "address", spec


def thread_env(workers: int) -> dict[str, str]:
    """Thread counts for each of ``workers`` local worker processes: the cores shared out, so
    that N workers never oversubscribe the machine (TensorFlow, BLAS, OpenMP)."""
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    return dict.fromkeys(THREAD_VARIABLES, threads)


def open_executor(spec: str | None, timeout: float = CONNECT_TIMEOUT) -> Executor:
    """The executor for ``--dask SPEC`` (None: in-process). Starting a LocalCluster takes a few
    seconds; an address that no scheduler answers within ``timeout`` s is a DltoolsError."""
    if spec is None:
        return InProcess()
    kind, value = parse_dask(spec)
    try:
        import logging

        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - dask is a dependency
        raise DltoolsError(f"--dask needs dask and distributed installed: {err}") from None
    if kind == "local":
        workers = value or os.cpu_count() or 1
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,  # failures reach the client
            env=thread_env(workers),
        )
        client = Client(cluster)
        client.wait_for_workers(workers)
        return DaskExecutor(client, cluster, f"LocalCluster of {workers} worker process(es)")
    try:
        client = Client(value, timeout=timeout)
    except (OSError, TimeoutError) as err:
        raise DltoolsError(
            f"--dask {value}: no Dask scheduler answered within {timeout:g} s ({err}); start one "
            "(dask scheduler) or use --dask local:N"
        ) from None
    return DaskExecutor(client, None, f"Dask scheduler {value}")
