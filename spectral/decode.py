"""``dltools spectral decode``; the logic lives in :mod:`dltools.cli.spectral`."""

from dltools.cli.spectral import decode

if __name__ == "__main__":
    raise SystemExit(decode())
