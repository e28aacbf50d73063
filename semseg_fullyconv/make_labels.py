"""Step 8 script (the original dl_tools name); the logic lives in :mod:`dltools.cli.fcn`."""

from dltools.cli.fcn import script_main

if __name__ == "__main__":
    raise SystemExit(script_main("make-labels"))
