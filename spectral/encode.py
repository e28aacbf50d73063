"""``dltools spectral encode``; the logic lives in :mod:`dltools.cli.spectral`."""

from dltools.cli.spectral import encode

if __name__ == "__main__":
    raise SystemExit(encode())
