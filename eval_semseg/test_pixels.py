"""Step 7 script (the original dl_tools name); the logic lives in :mod:`dltools.cli.eval_pixels`."""

from dltools.cli.eval_pixels import main

if __name__ == "__main__":
    raise SystemExit(main())
