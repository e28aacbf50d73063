"""Step 4 script (the original dl_tools name); the logic lives in :mod:`dltools.cli.retrain`."""

from dltools.cli.retrain import main

if __name__ == "__main__":
    raise SystemExit(main())
