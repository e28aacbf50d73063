"""Step 3 script (the original dl_tools name); the logic lives in :mod:`dltools.cli.retile`."""

from dltools.cli.retile import main

if __name__ == "__main__":
    raise SystemExit(main())
