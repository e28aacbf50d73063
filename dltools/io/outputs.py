"""Writing outputs safely: never silently overwrite, never leave a half-written file.

Work in progress lives in hidden staging files and folders beside the output, named
``.<name>.<pid>.<random>`` after the process writing them: a run that is killed leaves them
behind, and :func:`remove_stale` lets the next run remove those whose process is gone.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
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
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.stem}.{os.getpid()}.", suffix=final.suffix, dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a new hidden folder beside ``final`` to build it in; it replaces ``final`` only if
    the block exits without an exception, and is removed otherwise (the folder counterpart of
    :func:`atomic_path`).

    Its mode follows the umask, as folders made by ``mkdir`` do (``tempfile.mkdtemp`` makes
    0700 folders, which colleagues could not read once renamed into place).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}.", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale(folder: str | os.PathLike, name: str | None) -> list[Path]:
    """Remove the staging files and folders of ``name`` (``.<name>.<pid>.*``, see
    :func:`atomic_path` and :func:`atomic_dir`; None: of any name) in ``folder`` left by
    processes that no longer run; return them. Those of live processes (another run at work)
    are left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stem = r"[^.]+" if name is None else re.escape(name)
    pattern = re.compile(rf"\.{stem}\.(\d+)\.")
    removed = []
    for entry in sorted(folder.iterdir()):
        found = pattern.match(entry.name)
        if found is None or _alive(int(found.group(1))):
            continue
        _remove(entry)
        removed.append(entry)
    return removed


def remove_staging(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove every staging entry (``.<stem>.*``, files or folders) beside ``paths``, whichever
    process made it; return them. Only for a run whose units have all ended: a unit killed
    while writing (a Dask worker that died) leaves them, and its rerun elsewhere does not know
    them."""
    removed = []
    for path in map(Path, paths):
        if not path.parent.is_dir():
            continue
        for entry in sorted(path.parent.glob(f".{glob.escape(path.stem)}.*")):
            _remove(entry)
            removed.append(entry)
    return removed


def _remove(entry: Path) -> None:
    """Remove a staging file or folder (a link as a file)."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """True if a process ``pid`` exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so set it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
