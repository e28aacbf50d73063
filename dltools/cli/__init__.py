"""``dltools <step>``: one console entry point that dispatches to a module per step.

Each step module defines ``build_parser() -> argparse.ArgumentParser`` and
``main(argv=None) -> int``. Modules are imported only when their step runs, so
``dltools split`` never pays for importing TensorFlow.
"""

from __future__ import annotations

import importlib
import sys

# step name -> (module under dltools.cli, one-line summary)
STEPS: dict[str, tuple[str, str]] = {
    "split": ("split", "step 1: split a folder of images into train/ and test/"),
    "cp-mat": ("cp_mat", "step 1: copy <name>_mres.mat files next to their images in train/test"),
    "label": ("label", "step 2: paint strokes; a dense CRF fills in the label image"),
    "retile": ("retile", "step 3: cut labelled images into a library of pure class tiles"),
    "retrain": ("retrain", "step 4: train a tile classifier (TF-Hub module or from scratch)"),
    "eval-tiles": ("eval_tiles", "step 5: score a tile classifier on class folders of tiles"),
    "segment": ("segment", "step 6: tile classifier + CRF / per-image MLP / RF -> pixel labels"),
    "eval-pixels": ("eval_pixels", "step 7: score pixel labels against manual labels"),
    "fcn": ("fcn", "step 8: fully convolutional segmentation (make-labels, train, infer)"),
    "polygonize": ("polygonize", "class raster -> GeoPackage polygons (class, area, confidence)"),
    "features": ("features", "embed tiles of a tile library or of images as feature vectors"),
    "similar": ("similar", "the tiles most like a query tile, from a feature set"),
    "spectral": ("spectral", "autoencoders and 1-D CNN pixel classifiers for spectral cubes"),
    "serve": ("serve", "serve trained models over HTTP, with a web page to try them"),
}


def _usage() -> str:
    width = max(len(name) for name in STEPS)
    lines = ["usage: dltools <step> [options]   (dltools <step> --help for a step's options)", ""]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in STEPS.items()]
    lines += ["", f"  {'--version':<{width}}  print the version of dltools"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``dltools <step> ...``; return the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if argv[0] == "--version":
        from dltools import __version__

        print(f"dltools {__version__}")
        return 0
    step = argv[0]
    if step not in STEPS:
        print(f"error: unknown step {step!r}; dltools --help lists the steps", file=sys.stderr)
        return 2
    module = importlib.import_module(f"dltools.cli.{STEPS[step][0]}")
    return module.main(argv[1:])
