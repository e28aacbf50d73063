"""Compare the label rasters of two pipeline runs (e.g. ``make demo`` before and after a change).

Every label output found under BEFORE is looked for under AFTER at the same relative path:
label images and GeoTIFFs (``*_label.png``, ``*_labelIds.png``, ``*_mres_geo.tif``,
``*_ares_*.tif`` but not their ``_prob`` rasters, ``*_fcn*_label.tif``) and the ``class`` array
of ``.mat`` results. Prints one line per file with the share of equal pixels and exits 1 when a
file is missing or differs. Figures are not compared.

    python bench/compare_outputs.py /tmp/demo_before demo_out
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

PATTERNS = ("*_label.png", "*_labelIds.png", "*_mres_geo.tif", "*_ares_*.tif", "*_label.tif")


def label_files(root: Path) -> list[Path]:
    """Relative paths of the label outputs under ``root`` (probability rasters left out)."""
    found = {p for pattern in PATTERNS for p in root.rglob(pattern)}
    found |= set(root.rglob("*_[am]res*.mat"))
    return sorted(p.relative_to(root) for p in found if not p.stem.endswith("_prob"))


def read_labels(path: Path) -> np.ndarray:
    if path.suffix == ".mat":
        from dltools.io.results import read_result

        return read_result(path).class_map
    from dltools.io.geo import read_raster

    return read_raster(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="output folder of the reference run")
    parser.add_argument("after", type=Path, help="output folder of the run to check")
    args = parser.parse_args(argv)
    files = label_files(args.before)
    if not files:
        print(f"error: no label outputs under {args.before}", file=sys.stderr)
        return 2
    failed = 0
    for name in files:
        if not (args.after / name).is_file():
            print(f"MISSING  {name}")
            failed += 1
            continue
        old, new = read_labels(args.before / name), read_labels(args.after / name)
        same = old.shape == new.shape and np.array_equal(old, new)
        share = float(np.mean(old == new)) if old.shape == new.shape else 0.0
        print(f"{'same' if same else 'DIFFERS':8} {name}  ({100 * share:.4f}% of pixels equal)")
        failed += not same
    print(f"{len(files) - failed} of {len(files)} label outputs identical")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
