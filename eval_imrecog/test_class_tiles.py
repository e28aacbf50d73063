"""Step 5 script (the original dl_tools name); the logic lives in :mod:`dltools.cli.eval_tiles`."""

from dltools.cli.eval_tiles import main

if __name__ == "__main__":
    raise SystemExit(main())
