"""dltools as a separate process, for the tests that kill or interrupt a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def start(args: list, **kwargs) -> subprocess.Popen:
    """``python -m dltools ARGS`` started from this checkout; stdout and stderr piped (text)
    unless ``kwargs`` say otherwise.

    A Ctrl-C (SIGINT) reaches it as in a terminal even when the tests themselves run as a
    background job (``make test &``), whose processes inherit SIGINT ignored."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    return subprocess.Popen(
        [sys.executable, "-m", "dltools", *map(str, args)],
        env=env,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **streams,
    )


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``ready()`` until it holds; fail (killing ``proc``) if ``proc`` ends first or
    ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"finished too early: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("not ready in time")
        time.sleep(0.02)


class Interrupter:
    """Makes in-process units of work raise KeyboardInterrupt (a Ctrl-C) once ``stop_after``
    have finished (None: never); ``ran`` lists the indices of the units that finished."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from dltools.scale.executor import Executor

        self.stop_after: int | None = None
        self.ran: list[int] = []
        outcomes = Executor.outcomes

        def counted(executor, fn, items, limit=None):
            for outcome in outcomes(executor, fn, items, limit):
                if len(self.ran) == self.stop_after:
                    raise KeyboardInterrupt
                self.ran.append(outcome.index)
                yield outcome

        monkeypatch.setattr(Executor, "outcomes", counted)
