"""Step 2 script (the original dl_tools name); the logic lives in :mod:`dltools.cli.label`."""

from dltools.cli.label import main

if __name__ == "__main__":
    raise SystemExit(main())
