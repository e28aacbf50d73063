"""The models a server holds: each loaded once, at start-up, with its classes and colours.

A model is given as ``PATH`` or ``PATH:LABELDEFS`` (:func:`parse_spec`) and may be

- a step-4 tile model (a SavedModel folder, ``.keras`` or legacy ``.pb``;
  :func:`dltools.models.loader.load_model`): class names from the model or from LABELDEFS,
  colours from LABELDEFS (matched by name) or :func:`dltools.io.labels.default_colors`;
- a step-8 FCN run folder (:func:`dltools.pipeline.fcn.load_run`): its own labeldefs.txt;
- a spectral classifier or autoencoder folder (:func:`dltools.spectral.folder.load_model`).

The model's name in URLs is the last component of PATH without its suffix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltools.errors import DltoolsError
from dltools.io.labels import Classes, default_colors, read_labeldefs
from dltools.models.metadata import model_tile_size
from dltools.models.runs import run_format

TILE, FCN, SPECTRAL_CLASSIFIER, SPECTRAL_AUTOENCODER = (
    "tile",
    "fcn",
    "spectral-classifier",
    "spectral-autoencoder",
)


@dataclass
class ServedModel:
    """One loaded model: ``kind`` (one of the four above), ``classes`` (None for
    autoencoders), ``bands`` (spectra length; 3 for RGB networks), ``tile_size`` (pixels of
    a tile-model tile; None otherwise) and the loaded object itself in ``model``."""

    name: str
    kind: str
    path: Path
    classes: Classes | None
    bands: int
    tile_size: int | None
    model: object

    def values(self) -> list[int]:
        """The label value of each class: k + 1, or the training values of a spectral model."""
        if self.kind == SPECTRAL_CLASSIFIER:
            return [int(v) for v in self.model.config["classes"]["values"]]
        return list(range(1, len(self.classes.names) + 1))

    def describe(self) -> dict:
        """What ``GET /models`` shows of this model."""
        classes = self.classes and [
            {"name": name, "value": value, "color": "#{:02x}{:02x}{:02x}".format(*rgb)}
            for name, value, rgb in zip(
                self.classes.names, self.values(), self.classes.colors.tolist(), strict=True
            )
        ]
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "classes": classes or [],
            "bands": self.bands,
            "tile_size": self.tile_size,
        }


def parse_spec(spec: str) -> tuple[Path, Path | None]:
    """``PATH`` or ``PATH:LABELDEFS`` -> (model path, labeldefs path or None)."""
    path, _, labeldefs = spec.partition(":")
    if not path:
        raise DltoolsError(f"--model {spec!r}: expected PATH or PATH:LABELDEFS")
    return Path(path), Path(labeldefs) if labeldefs else None


def _tile_classes(model, labeldefs: Path | None) -> Classes:
    names = model.class_names
    if labeldefs is None:
        if names is None:
            raise DltoolsError(
                f"{model.path} does not record its class names: give them as "
                f"--model {model.path}:labeldefs.txt"
            )
        return Classes(list(names), default_colors(len(names)))
    defined, rgb = read_labeldefs(labeldefs)
    if names is None:
        model.check_labels(defined, labeldefs)
        return Classes(defined, rgb)
    missing = [name for name in names if name not in defined]
    if missing:
        raise DltoolsError(f"{labeldefs} defines no colour for {', '.join(missing)}")
    return Classes(list(names), rgb[[defined.index(name) for name in names]])


def load_served(spec: str) -> ServedModel:
    """Load the model of one ``--model`` value (see the module docstring)."""
    from dltools.pipeline.fcn import RUN_FORMAT

    path, labeldefs = parse_spec(spec)
    name = path.name[: -len(path.suffix)] if path.suffix in {".keras", ".pb"} else path.name
    if not path.exists():
        raise DltoolsError(f"{path}: model not found")
    found = run_format(path)
    if found == RUN_FORMAT:
        from dltools.pipeline.fcn import load_run

        run = load_run(path)
        return ServedModel(name, FCN, path, run.classes, 3, None, run)
    from dltools.spectral.folder import FORMAT

    if found == FORMAT:
        from dltools.spectral.folder import load_model as load_spectral

        model = load_spectral(path)
        if model.kind != "classifier":
            return ServedModel(name, SPECTRAL_AUTOENCODER, path, None, model.bands, None, model)
        saved = model.config["classes"]
        classes = Classes(list(saved["names"]), np.array(saved["colors"], np.uint8))
        return ServedModel(name, SPECTRAL_CLASSIFIER, path, classes, model.bands, None, model)
    from dltools.models.loader import load_model

    model = load_model(path)
    classes = _tile_classes(model, labeldefs)
    return ServedModel(name, TILE, path, classes, 3, model_tile_size(path), model)


def load_all(specs: list[str]) -> dict[str, ServedModel]:
    """Load every ``--model`` value once; names must be unique."""
    if not specs:
        raise DltoolsError("give at least one --model")
    served: dict[str, ServedModel] = {}
    for spec in specs:
        model = load_served(spec)
        if model.name in served:
            raise DltoolsError(
                f"two models are named {model.name!r} ({served[model.name].path} and "
                f"{model.path}): rename one folder"
            )
        served[model.name] = model
    return served
