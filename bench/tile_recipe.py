"""Step 4's recipe on river frames nobody tuned on: held-out tile scores of ``retrain`` variants.

The 10 St Margaret's frames of ../shared are split by frame (the test suite's split: 7 train,
26818 / 26836 / 27113 held out), each part cut into 96-px tiles at purity 0.9 (step 3, the
original command line ``retile -t 96 -a 0.9 -b 0.5``). Each variant trains on the training
library (step 4, the original ``--how_many_training_steps 1000 --learning_rate 0.01``, features
at 96 px, the shared MobileNetV2, seed 0) plus its own arguments, and step 5 scores every tile of
the held-out frames. Prints held-out tile accuracy, macro F1, sediment F1 and wall / CPU minutes
(process user + system time, every thread) of the training; the load average is printed too.

    python bench/tile_recipe.py                                  # defaults against --legacy
    python bench/tile_recipe.py --variant=--legacy --variant="--legacy --balance" --variant=
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODULE = SHARED / "models" / "mobilenet_v2_100_feature_vector"
HELD_OUT = ("26818", "26836", "27113")
ORIGINAL = ["--image_size", "96", "--how_many_training_steps", "1000", "--learning_rate", "0.01"]


def dltools(*args) -> None:
    """Run one ``dltools`` step in its own process; stop the bench when it fails."""
    command = [sys.executable, "-m", "dltools", *map(str, args)]
    if subprocess.run(command, stdout=subprocess.DEVNULL).returncode:
        raise SystemExit(f"failed: {shlex.join(command)}")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def libraries(work: Path) -> dict[str, Path]:
    """The training and held-out tile libraries (made once per --work folder)."""
    source = SHARED / "data" / "stmarg" / "train"
    labels = work / "labels.txt"
    labels.write_text("water\nsediment\nvegetation\n")
    out = {}
    for part in ("train", "test"):
        folder = work / part
        if not (folder / "tile_96").is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            for image in sorted(source.glob("StMarg_*.jpg")):
                number = image.stem.split("_")[1]
                if (number in HELD_OUT) == (part == "test"):
                    for file in (image, source / f"SCLS_StMarg{number}.tif"):
                        if not (folder / file.name).exists():
                            (folder / file.name).symlink_to(file)
            dltools("retile", "-i", folder, "-l", labels, "-t", 96, "-a", 0.9, "-b", 0.5,
                    "-o", folder)  # fmt: skip
        out[part] = folder / "tile_96"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variant",
        action="append",
        help="retrain arguments added to the original command line, written --variant=ARGS; "
        "repeat for more variants (default: --legacy, then the defaults)",
    )
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    if not MODULE.is_dir():
        raise SystemExit(f"needs {MODULE} (../shared)")
    work = args.work or Path(tempfile.mkdtemp(prefix="tile_recipe_"))
    work.mkdir(parents=True, exist_ok=True)
    tiles = libraries(work)
    rows = []
    for number, variant in enumerate(args.variant or ["--legacy", ""]):
        out = work / f"variant_{number}"
        extra = shlex.split(variant)
        start, cpu = time.time(), children_cpu_seconds()
        dltools(
            "retrain", "--image_dir", tiles["train"], "--tfhub_module", MODULE,
            "--output_graph", out / "model", "--output_labels", out / "labels.txt",
            "--bottleneck_dir", work / "bottlenecks", *ORIGINAL, *extra, "--force",
        )  # fmt: skip
        wall, cpu = (time.time() - start) / 60, (children_cpu_seconds() - cpu) / 60
        dltools("eval-tiles", "-i", tiles["test"], "-l", out / "labels.txt", "-m", out / "model",
                "-n", 100_000, "-o", out, "--force")  # fmt: skip
        scores = json.loads((out / "test_metrics.json").read_text())
        sediment = scores["per_class"]["sediment"]["f1"]
        row = f"| `{variant or '(defaults)'}` | {scores['accuracy']:.3f} | {scores['macro_f1']:.3f}"
        rows.append(f"{row} | {sediment:.2f} | {wall:.1f} | {cpu:.1f} |")
        print(rows[-1], f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print("\n| variant | held-out tile accuracy | macro F1 | sediment F1 | wall min | CPU min |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
