"""Run folders: a trained network's folder, described by its ``config.json``.

Every network that trains over epochs (the FCN of step 8, the spectral models) keeps what it
needs in one folder; ``config.json`` names the folder's ``format`` and holds the settings,
classes, epochs done and history. This module is the one reader and writer of that file
(no TensorFlow needed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dltools.errors import DltoolsError
from dltools.io.outputs import atomic_path

CONFIG = "config.json"


def run_format(folder: str | os.PathLike) -> str | None:
    """The ``format`` named by ``folder/config.json``, or None when there is no such file."""
    path = Path(folder) / CONFIG  # a file only inside a folder
    return _read(path).get("format") if path.is_file() else None


def read_config(folder: str | os.PathLike, run_format: str, what: str) -> dict:
    """``folder/config.json``, checked to be of ``run_format``.

    ``what`` names the folder kind in errors (e.g. ``"an FCN run folder"``).
    """
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise DltoolsError(f"{folder}: not {what} (no {CONFIG} in it)")
    config = _read(path)
    if config.get("format") != run_format:
        raise DltoolsError(f"{path}: not the config of {what}")
    return config


def write_config(folder: str | os.PathLike, config: dict, run_format: str) -> dict:
    """Write ``config`` (JSON-serialisable) as ``folder/config.json``, atomically, with its
    ``format``; return what was written."""
    config = {"format": run_format, **config}
    with atomic_path(Path(folder) / CONFIG) as tmp:
        tmp.write_text(json.dumps(config, indent=1) + "\n")
    return config


def _read(path: Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DltoolsError(f"{path}: cannot read it ({err})") from err
    if not isinstance(config, dict):
        raise DltoolsError(f"{path}: not a run's config (no JSON object)")
    return config
