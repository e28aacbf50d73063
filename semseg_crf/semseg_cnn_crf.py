"""Step 6 script (the original dl_tools name and arguments); see :mod:`dltools.cli.segment`."""

from dltools.cli.segment import main_original

if __name__ == "__main__":
    raise SystemExit(main_original())
