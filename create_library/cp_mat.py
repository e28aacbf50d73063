"""Step 1 script (the original dl_tools name); the logic lives in :mod:`dltools.cli.cp_mat`."""

from dltools.cli.cp_mat import main

if __name__ == "__main__":
    raise SystemExit(main())
