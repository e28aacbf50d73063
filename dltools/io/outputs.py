"""Writing outputs safely: never silently overwrite, never leave a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from dltools.errors import DltoolsError


def ensure_new(paths: Iterable[str | os.PathLike], force: bool = False) -> None:
    """Raise :class:`DltoolsError` naming every path that already exists, unless ``force``.

    Call it for all outputs of a step before any work starts, so that a refusal costs nothing.
    """
    if force:
        return
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing:
        listed = "\n  ".join(existing)
        raise DltoolsError(
            f"refusing to overwrite existing output(s):\n  {listed}\n"
            "move them away or pass --force to replace them"
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary name keeps the final suffix, so writers that choose a format by extension
    (OpenCV, rasterio, matplotlib) still work. On an exception the temporary file is removed
    and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so set it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
